"""Which process this is when launched as several (`accelerate launch --num_processes N`, `torchrun`).

A plain run is process 0 of 1 and never touches `torch.distributed`. Under a launcher (WORLD_SIZE > 1)
accelerate's `PartialState` gives the rank, the count, this process's device, a barrier and a gather.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Processes:
    index: int = 0
    count: int = 1
    device: torch.device | None = None  # None: choose from params (a single process)
    state: Any = None  # accelerate.PartialState when launched as several

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def wait(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

    def gather(self, item: Any) -> list[Any]:
        if self.state is None:
            return [item]
        from accelerate.utils import gather_object

        return gather_object([item])


def launched_processes(device_preference: str = "auto") -> Processes:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes()
    from accelerate import PartialState

    # Without cpu=True accelerate treats a GPU-less multi-process launch as a single process.
    on_cpu = device_preference == "cpu" or (device_preference == "auto" and not torch.cuda.is_available())
    state = PartialState(cpu=on_cpu)
    return Processes(state.process_index, state.num_processes, state.device, state)

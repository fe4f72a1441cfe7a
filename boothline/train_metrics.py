"""Per-step training metrics (`data/train/metrics.csv`, a DVC plot) and their end-of-run summary.

The rows travel inside every checkpoint, so a resumed run's metrics file is the whole run's, exactly as
if it had never stopped (timings aside).
"""

from __future__ import annotations

import csv
import io
import time
from collections import deque

COLUMNS = ("step", "loss", "instance_loss", "prior_loss", "lr", "steps_per_s")
RATE_WINDOW = 10  # steps/s is measured over the last few steps: one step alone is too noisy to plot


class MetricsLog:
    def __init__(self, rows: list[dict[str, float]] | None = None):
        self.rows = rows or []

    @classmethod
    def from_csv(cls, text: str) -> "MetricsLog":
        return cls([{k: float(v) if k != "step" else int(v) for k, v in row.items()}
                    for row in csv.DictReader(io.StringIO(text))])

    def add(self, **row: float) -> None:
        self.rows.append({key: row[key] for key in COLUMNS})

    def csv(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: v if k == "step" else repr(float(v)) for k, v in row.items()})
        return buf.getvalue()

    def summary(self, last: int = 10) -> dict[str, float | None]:
        """Final values, means over the last `last` steps, and the largest prior loss (it should stay bounded)."""
        if not self.rows:
            return {}
        tail = self.rows[-last:]
        mean = lambda key: sum(r[key] for r in tail) / len(tail)  # noqa: E731
        return {
            "final_loss": self.rows[-1]["loss"],
            "final_instance_loss": self.rows[-1]["instance_loss"],
            "final_prior_loss": self.rows[-1]["prior_loss"],
            f"mean_loss_last_{last}": mean("loss"),
            f"mean_instance_loss_last_{last}": mean("instance_loss"),
            f"mean_prior_loss_last_{last}": mean("prior_loss"),
            "max_prior_loss": max(r["prior_loss"] for r in self.rows),
            "final_lr": self.rows[-1]["lr"],
        }


class Throughput:
    """Steps per second over a sliding window of recent steps."""

    def __init__(self, window: int = RATE_WINDOW):
        self.times: deque[float] = deque(maxlen=window + 1)
        self.times.append(time.perf_counter())

    def step(self) -> float:
        self.times.append(time.perf_counter())
        elapsed = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / elapsed if elapsed > 0 else 0.0

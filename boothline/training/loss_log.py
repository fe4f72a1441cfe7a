"""Per-step training metrics (`data/train/metrics.csv`, a DVC plot) and their end-of-run summary.

The rows travel inside every checkpoint, so a resumed run's metrics file is the whole run's, exactly as
if it had never stopped (timings aside).
"""

from __future__ import annotations

import csv
import io
import time

import torch

COLUMNS = ("step", "loss", "instance_loss", "prior_loss", "lr", "steps_per_s")


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


class LossReadback:
    """Losses stay on the device until read back, every `every` steps and whenever `read` is called: each
    read waits for the device to finish its queued work, so reading every step would stall it. Every row
    gets the steps/s of the window it was read in, which is device time, not enqueue time."""

    def __init__(self, log: MetricsLog, every: int):
        self.log, self.every = log, every
        self.pending: list[tuple[int, float, torch.Tensor]] = []
        self.since = time.perf_counter()

    def add(self, step: int, lr: float, losses: torch.Tensor) -> None:
        """`losses`: (loss, instance_loss, prior_loss) of optimizer step `step`, on any device."""
        self.pending.append((step, lr, losses))
        if step % self.every == 0:
            self.read()

    def read(self) -> dict[str, float] | None:
        """Move the pending steps into the log; the newest row, or None if nothing was pending."""
        if not self.pending:
            return None
        values = torch.stack([losses for _, _, losses in self.pending]).tolist()
        now = time.perf_counter()
        rate = len(self.pending) / (now - self.since) if now > self.since else 0.0
        self.since = now
        for (step, lr, _), (loss, instance_loss, prior_loss) in zip(self.pending, values):
            self.log.add(step=step, loss=loss, instance_loss=instance_loss, prior_loss=prior_loss, lr=lr,
                         steps_per_s=rate)
        self.pending.clear()
        return self.log.rows[-1]

"""Training metrics: the CSV survives a round trip through a checkpoint; the summary reads it; losses are
read back from the device in windows, every row kept."""

from __future__ import annotations

import time

import torch

from boothline.training.loss_log import COLUMNS, LossReadback, MetricsLog


def test_metrics_round_trip_and_summary():
    log = MetricsLog()
    for step in range(1, 13):
        log.add(step=step, loss=2.0 / step, instance_loss=1.0 / step, prior_loss=1.0 / step + (step == 3), lr=1e-4,
                steps_per_s=5.0)
    text = log.csv()
    assert text.splitlines()[0] == ",".join(COLUMNS)
    again = MetricsLog.from_csv(text)
    assert again.csv() == text and [r["step"] for r in again.rows] == list(range(1, 13))
    summary = again.summary(last=10)
    assert summary["final_loss"] == 2.0 / 12
    assert abs(summary["mean_loss_last_10"] - sum(2.0 / s for s in range(3, 13)) / 10) < 1e-7
    assert abs(summary["max_prior_loss"] - (1 + 1 / 3)) < 1e-7
    assert MetricsLog().summary() == {}


def test_losses_are_read_back_in_windows_with_every_row_kept():
    log = MetricsLog()
    readback = LossReadback(log, every=4)
    for step in range(1, 7):
        time.sleep(0.01)
        readback.add(step, 1e-4, torch.tensor([3.0, 2.0, 1.0]) * step)
        assert len(log.rows) == (4 if step >= 4 else 0)  # nothing is read before the window is full
    assert readback.read()["step"] == 6 and readback.read() is None
    assert [r["step"] for r in log.rows] == [1, 2, 3, 4, 5, 6]
    assert log.rows[4]["loss"] == 15.0 and log.rows[4]["prior_loss"] == 5.0
    first, second = log.rows[0]["steps_per_s"], log.rows[5]["steps_per_s"]
    assert log.rows[3]["steps_per_s"] == first and log.rows[4]["steps_per_s"] == second  # one rate per window
    assert 0 < first <= 100 and 0 < second <= 100  # steps of at least 10 ms each

"""Training metrics: the CSV survives a round trip through a checkpoint; the summary reads it."""

from __future__ import annotations

from boothline.train_metrics import COLUMNS, MetricsLog, Throughput


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


def test_throughput_is_positive():
    rate = Throughput(window=3)
    assert all(rate.step() > 0 for _ in range(5))

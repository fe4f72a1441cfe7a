"""The pretraining loop: seeded per step, so a stopped and resumed run ends with the same weights."""

from __future__ import annotations

import torch

from boothline.pretraining.loop import Trainer, learning_rate


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def loss_of(model):
    def loss(step, generator):
        x = torch.randn(16, 4, generator=generator)
        return (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
    return loss


def test_a_resumed_run_ends_bit_for_bit_where_an_uninterrupted_one_does(tmp_path):
    whole = make_model()
    Trainer(whole, tmp_path / "whole", steps=8, lr=1e-2, seed=3, warmup=2, ema_decay=0.9,
            checkpoint_every=4).run(loss_of(whole))

    class Killed(Exception):
        pass

    first = make_model()
    dies = loss_of(first)

    def dies_at_step_6(step, generator):
        if step == 6:
            raise Killed
        return dies(step, generator)

    try:
        Trainer(first, tmp_path / "split", steps=8, lr=1e-2, seed=3, warmup=2, ema_decay=0.9,
                checkpoint_every=4).run(dies_at_step_6)
    except Killed:
        pass
    # A new process continues from the last checkpoint (step 4), not from where the first one died.
    second = make_model()
    trainer = Trainer(second, tmp_path / "split", steps=8, lr=1e-2, seed=3, warmup=2, ema_decay=0.9,
                      checkpoint_every=4)
    assert trainer.step == 4
    ema = trainer.run(loss_of(second))
    for a, b in zip(whole.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    assert len((tmp_path / "split" / "loss.csv").read_text().splitlines()) == 9  # header + 8 steps
    assert ema is trainer.ema


def test_another_configuration_starts_afresh(tmp_path):
    model = make_model()
    Trainer(model, tmp_path / "w", steps=2, lr=1e-2, seed=0, fingerprint="a").run(loss_of(model))
    assert Trainer(make_model(), tmp_path / "w", steps=4, lr=1e-2, seed=0, fingerprint="a").step == 2
    assert Trainer(make_model(), tmp_path / "w", steps=4, lr=1e-2, seed=0, fingerprint="b").step == 0


def test_the_learning_rate_warms_up_then_decays_to_a_tenth():
    rates = [learning_rate(s, 100, 1.0, 10) for s in range(100)]
    assert rates[0] == 0.1 and rates[9] == 1.0 and rates[10] == 1.0
    assert rates[-1] > 0.1 - 1e-9 and rates[-1] < 0.11 and sorted(rates[10:], reverse=True) == rates[10:]

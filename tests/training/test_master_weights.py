import pytest
import torch

from boothline.training import master_weights
from boothline.training.master_weights import MasterWeights


def micro_step(models: dict[str, torch.nn.Module], seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 4, generator=generator, dtype=torch.bfloat16)
    models["unet"][1](models["unet"][0](x)).square().mean().backward()  # the last layer of [2] gets no gradient


@pytest.mark.parametrize("chunk", [1, 2, 64])
def test_gradients_reach_the_masters_summed_in_fp32_and_leave_the_modules(monkeypatch, chunk):
    monkeypatch.setattr(master_weights, "GRADIENT_CHUNK", chunk)
    torch.manual_seed(0)
    models = {"unet": torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2), torch.nn.Linear(2, 2))}
    masters = MasterWeights(models)
    assert all(p.dtype == torch.bfloat16 for p in models["unet"].parameters())

    expected = [None] * len(masters.masters)
    for seed in (1, 2):
        micro_step(models, seed)
        for i, p in enumerate(masters.compute):
            if p.grad is not None:
                expected[i] = p.grad.float() + (expected[i] if expected[i] is not None else 0)
        masters.gradients_to_masters()
        assert all(p.grad is None for p in masters.compute)

    for master, want in zip(masters.masters, expected):
        assert master.dtype == torch.float32
        if want is None:
            assert master.grad is None
        else:
            torch.testing.assert_close(master.grad, want, rtol=0, atol=0)

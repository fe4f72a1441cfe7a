"""Training batches: deterministic per step and process, cached latents equal encoded ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from boothline.io.images import load_rgb
from boothline.training.batches import Augment, DreamBoothBatches, EpochOrder, LatentSource, tokenize

DEMO = Path(__file__).resolve().parents[2] / "data/subjects/demo"


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from boothline.pipelines.loading import load_pipeline

    return load_pipeline(str(tiny_dir))


@pytest.fixture(scope="module")
def demo_images():
    return [load_rgb(p) for p in sorted(DEMO.glob("*.png"))]


def test_each_epoch_is_a_seeded_permutation():
    order = EpochOrder(5, seed=3, stream="instance-order")
    epochs = [[order[e * 5 + k] for k in range(5)] for e in range(3)]
    assert all(sorted(epoch) == list(range(5)) for epoch in epochs)
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]
    again = EpochOrder(5, seed=3, stream="instance-order")
    assert [again[k] for k in range(12, 2, -1)] == [order[k] for k in range(12, 2, -1)]


def test_batches_are_a_function_of_step_and_rank(tiny, demo_images):
    augment = Augment(64, center_crop=True, random_flip=True)
    instance = LatentSource(tiny.vae, demo_images[:3], augment)
    prior = LatentSource(tiny.vae, demo_images[3:], augment)
    make = lambda rank: DreamBoothBatches(instance, prior, batch_size=2, seed=0, offset_noise=0.0,  # noqa: E731
                                          num_train_timesteps=1000, rank=rank, world_size=2)
    first, again, other_rank = make(0)(7), make(0)(7), make(1)(7)
    assert first.latents.shape == (4, 4, 32, 32) and first.prompt_index.tolist() == [0, 0, 1, 1]
    assert first.num_instance == 2
    for a, b in ((first.latents, again.latents), (first.noise, again.noise), (first.timesteps, again.timesteps)):
        assert torch.equal(a, b)
    assert not torch.equal(first.noise, other_rank.noise)
    assert not torch.equal(first.noise, make(0)(8).noise)


def test_cached_latents_equal_latents_encoded_per_step(tiny, demo_images):
    augment = Augment(64, center_crop=True, random_flip=True)
    cached = LatentSource(tiny.vae, demo_images, augment, cache=True)
    encoded = LatentSource(tiny.vae, demo_images, augment, cache=False)
    assert cached.cached and not encoded.cached
    for step in range(3):
        g1, g2 = torch.Generator().manual_seed(step), torch.Generator().manual_seed(step)
        torch.testing.assert_close(cached.draw([0, 2, 4, 1], g1), encoded.draw([0, 2, 4, 1], g2), atol=1e-5, rtol=0)


def test_flips_and_random_crops(tiny, demo_images):
    flipping = LatentSource(tiny.vae, demo_images[:1], Augment(64, random_flip=True))
    mirrored = flipping.encode([(demo_images[0], None, True)])
    assert torch.equal(flipping.cache[True], mirrored)
    assert not torch.allclose(flipping.cache[True], flipping.cache[False])

    wide = demo_images[0].resize((96, 64))
    cropping = LatentSource(tiny.vae, [wide], Augment(64, center_crop=False), cache=True)
    assert not cropping.cached  # random crops change every step
    draws = [cropping.draw([0], torch.Generator().manual_seed(s)) for s in range(4)]
    assert all(d.shape == (1, 4, 32, 32) for d in draws)
    assert any(not torch.equal(draws[0], d) for d in draws[1:])


def test_tokenize_pads_to_the_model_length(tiny):
    text = tokenize(tiny.tokenizer, ["a photo of sks toy", "a photo of a toy"])
    assert text.input_ids.shape == (2, tiny.tokenizer.model_max_length)
    assert text.rows(torch.tensor([1, 1, 0])).input_ids.shape[0] == 3

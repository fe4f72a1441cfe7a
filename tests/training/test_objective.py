"""The DreamBooth objective against a plain reference computation, and its random draws."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from boothline.training.objective import Objective, draw_noise, draw_timesteps, loss_terms, step_generator

PRIOR_WEIGHT = 0.7


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from boothline.pipelines.loading import load_pipeline

    return load_pipeline(str(tiny_dir))


def fixed_batch(pipe, n_instance: int = 2, n_class: int = 2):
    g = torch.Generator().manual_seed(123)
    count = n_instance + n_class
    latents = torch.randn(count, 4, 8, 8, generator=g)
    noise = torch.randn(count, 4, 8, 8, generator=g)
    # Very different timesteps per half, so weighting a half with the other half's timesteps would show.
    timesteps = torch.tensor([5, 40, 700, 980][:count])
    dim = pipe.unet.config.cross_attention_dim
    text = torch.randn(count, 7, dim, generator=g)
    return latents, text, noise, timesteps, n_instance


def reference_loss(unet, scheduler, latents, text, noise, timesteps, n, snr_gamma):
    """What the loss should be, written the plain way with diffusers' own helpers."""
    from diffusers.training_utils import compute_snr

    noisy = scheduler.add_noise(latents, noise, timesteps)
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    prediction = unet(noisy, timesteps, text).sample
    if snr_gamma is None:
        instance = F.mse_loss(prediction[:n], target[:n])
        prior = F.mse_loss(prediction[n:], target[n:])
    else:
        snr = compute_snr(scheduler, timesteps)
        clipped = torch.minimum(snr, torch.full_like(snr, snr_gamma))
        weights = clipped / (snr + 1) if scheduler.config.prediction_type == "v_prediction" else clipped / snr
        per_sample = F.mse_loss(prediction, target, reduction="none").mean(dim=(1, 2, 3)) * weights
        instance, prior = per_sample[:n].mean(), per_sample[n:].mean()
    return instance + PRIOR_WEIGHT * prior, instance, prior


def gradients(unet, loss, names):
    unet.zero_grad(set_to_none=True)
    loss.backward()
    params = dict(unet.named_parameters())
    return {name: params[name].grad.clone() for name in names}


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("snr_gamma", [None, 5.0])
def test_loss_and_gradients_match_a_plain_reference(tiny, prediction_type, snr_gamma):
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler.from_config(tiny.scheduler.config, prediction_type=prediction_type)
    objective = Objective.from_scheduler_config(scheduler.config, prior_loss_weight=PRIOR_WEIGHT,
                                                snr_gamma=snr_gamma, device=torch.device("cpu"))
    assert objective.prediction_type == prediction_type
    latents, text, noise, timesteps, n = fixed_batch(tiny)
    unet = tiny.unet
    names = ["conv_in.weight", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight", "conv_out.bias"]

    terms = loss_terms(unet, latents, text, noise, timesteps, n, objective)
    got = gradients(unet, terms.loss, names)
    loss, instance, prior = reference_loss(unet, scheduler, latents, text, noise, timesteps, n, snr_gamma)
    want = gradients(unet, loss, names)

    torch.testing.assert_close(terms.loss, loss, atol=1e-6, rtol=0)
    torch.testing.assert_close(terms.instance_loss, instance, atol=1e-6, rtol=0)
    torch.testing.assert_close(terms.prior_loss, prior, atol=1e-6, rtol=0)
    for name in names:
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=1e-5)


def test_min_snr_weighs_each_half_with_its_own_timesteps(tiny):
    objective = Objective.from_scheduler_config(tiny.scheduler.config, prior_loss_weight=1.0, snr_gamma=5.0,
                                                device=torch.device("cpu"))
    latents, text, noise, timesteps, n = fixed_batch(tiny)
    with torch.no_grad():
        base = loss_terms(tiny.unet, latents, text, noise, timesteps, n, objective)
        # Swapping the class rows' timesteps between themselves leaves the instance half untouched.
        swapped = timesteps.clone()
        swapped[n:] = timesteps[n:].flip(0)
        other = loss_terms(tiny.unet, latents, text, noise, swapped, n, objective)
    assert torch.equal(base.instance_loss, other.instance_loss)
    assert not torch.equal(base.prior_loss, other.prior_loss)
    # Epsilon: min(snr, 5) / snr is clipped below 1 at low t and ~1 at high t (snr < 5).
    # v-prediction: min(snr, 5) / (snr + 1) is below 1 everywhere and ~snr at high t, where snr -> 0.
    epsilon = Objective(objective.alphas_cumprod, "epsilon", snr_gamma=5.0).sample_weights(timesteps)
    assert epsilon[0] < 1 and torch.allclose(epsilon[2:], torch.ones(2), atol=1e-3)
    velocity = Objective(objective.alphas_cumprod, "v_prediction", snr_gamma=5.0).sample_weights(timesteps)
    snr = objective.alphas_cumprod[timesteps] / (1 - objective.alphas_cumprod[timesteps])
    torch.testing.assert_close(velocity, torch.clamp(snr, max=5.0) / (snr + 1))
    assert (velocity < 1).all() and velocity[3] < 0.01


def test_without_prior_rows_the_loss_is_the_instance_loss(tiny):
    objective = Objective.from_scheduler_config(tiny.scheduler.config, prior_loss_weight=1.0, snr_gamma=None,
                                                device=torch.device("cpu"))
    latents, text, noise, timesteps, _ = fixed_batch(tiny, n_instance=2, n_class=0)
    with torch.no_grad():
        terms = loss_terms(tiny.unet, latents, text, noise, timesteps, 2, objective)
    assert torch.equal(terms.loss, terms.instance_loss) and terms.prior_loss.item() == 0.0


def test_step_generators_depend_only_on_seed_step_rank_and_stream():
    draw = lambda *args: torch.randn(4, generator=step_generator(*args))  # noqa: E731
    assert torch.equal(draw(0, 5, 0, "batch"), draw(0, 5, 0, "batch"))
    variants = [draw(1, 5, 0, "batch"), draw(0, 6, 0, "batch"), draw(0, 5, 1, "batch"), draw(0, 5, 0, "global")]
    assert all(not torch.equal(draw(0, 5, 0, "batch"), v) for v in variants)


def test_offset_noise_adds_one_constant_per_sample_and_channel():
    plain = draw_noise((2, 4, 8, 8), step_generator(0, 0), 0.0)
    offset = draw_noise((2, 4, 8, 8), step_generator(0, 0), 0.1)
    shift = offset - plain
    assert shift.abs().max() > 0
    torch.testing.assert_close(shift, shift[:, :, :1, :1].expand_as(shift))
    timesteps = draw_timesteps(1000, step_generator(0, 0), 1000)
    assert timesteps.min() >= 0 and timesteps.max() <= 999 and timesteps.dtype == torch.long

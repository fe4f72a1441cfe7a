"""Single-file exports read back by diffusers' own loaders for the original SD and kohya layouts."""

from __future__ import annotations

import pytest
import torch

from boothline.export import full_model_state, save_single_file, text_encoder_to_ldm, text_model_keys


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from boothline.model import load_pipeline

    return load_pipeline(str(tiny_dir))


def test_full_model_round_trips_through_from_single_file(tiny, tiny_dir, tmp_path):
    from diffusers import StableDiffusionPipeline

    state = full_model_state(tiny, "fp32")
    for key in ("model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.out.2.bias",
                "model.diffusion_model.output_blocks.1.1.conv.weight",  # upsampler of an up block without attention
                "first_stage_model.decoder.up.0.block.0.conv1.weight", "first_stage_model.encoder.mid.attn_1.q.weight",
                "cond_stage_model.transformer.text_model.final_layer_norm.weight"):
        assert key in state, key
    assert state["first_stage_model.encoder.mid.attn_1.q.weight"].dim() == 4  # 1x1 conv in the original VAE
    path = save_single_file(tmp_path / "model.safetensors", state, {"boothline": "{}"})
    loaded = StableDiffusionPipeline.from_single_file(str(path), config=str(tiny_dir), safety_checker=None,
                                                      requires_safety_checker=False)
    for name in ("unet", "vae", "text_encoder"):
        want, got = getattr(tiny, name).state_dict(), getattr(loaded, name).state_dict()
        assert set(want) == set(got), name
        assert all(torch.equal(want[k], got[k].reshape(want[k].shape)) for k in want), name


def test_half_precision_export_is_the_cast_weights(tiny):
    half = full_model_state(tiny, "fp16")
    weight = tiny.unet.state_dict()["conv_in.weight"]
    assert torch.equal(half["model.diffusion_model.input_blocks.0.0.weight"], weight.half())


def test_sd2_text_encoder_uses_the_open_clip_layout():
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    encoder = CLIPTextModel(CLIPTextConfig(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                           num_attention_heads=2, max_position_embeddings=77, hidden_act="gelu"))
    state = text_encoder_to_ldm(encoder.state_dict(), encoder.config)
    assert "cond_stage_model.model.transformer.resblocks.1.attn.in_proj_weight" in state
    back = convert_open_clip_checkpoint(encoder, state)
    want = text_model_keys(encoder.state_dict())
    want.pop("text_model.embeddings.position_ids", None)
    assert set(back) == set(want)
    assert all(torch.equal(back[k], want[k]) for k in want)

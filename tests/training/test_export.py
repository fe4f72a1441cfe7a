"""Single-file exports read back by diffusers' own loaders for the original SD and kohya layouts."""

from __future__ import annotations

import pytest
import torch

from boothline.training.export import (full_model_state, lora_to_kohya, save_single_file, text_encoder_to_ldm,
                              text_model_keys)


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from boothline.pipelines.loading import load_pipeline

    return load_pipeline(str(tiny_dir))


def test_full_model_round_trips_through_from_single_file(tiny, tiny_dir, tmp_path):
    from diffusers import StableDiffusionPipeline

    state = full_model_state(tiny, "fp32")
    for key in ("model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.out.2.bias",
                "model.diffusion_model.output_blocks.1.2.conv.weight",  # upsampler after a block's attention
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


def test_kohya_lora_loads_back_and_reproduces_the_adapter(tiny_dir, tmp_path):
    from peft.utils import get_peft_model_state_dict

    from boothline.pipelines.loading import load_pipeline
    from boothline.params import Lora
    from boothline.training.trainable import add_lora_adapters

    lora = Lora(rank=4, alpha=8)
    adapted = load_pipeline(str(tiny_dir))
    add_lora_adapters(adapted.unet, adapted.text_encoder, lora, on_text_encoder=True, seed=0)
    with torch.no_grad():  # LoRA "up" weights start at zero; give them something to carry
        for module in (adapted.unet, adapted.text_encoder):
            for name, p in module.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))) * 0.02)
    kohya = lora_to_kohya(get_peft_model_state_dict(adapted.unet), get_peft_model_state_dict(adapted.text_encoder),
                          lora.alpha, "fp32")
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0.lora_down.weight" in kohya
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight" in kohya
    assert all(v.item() == 8.0 for k, v in kohya.items() if k.endswith(".alpha"))
    save_single_file(tmp_path / "lora.safetensors", kohya, {})

    loaded = load_pipeline(str(tiny_dir))
    loaded.load_lora_weights(str(tmp_path), weight_name="lora.safetensors")
    ids = adapted.tokenizer(["a photo of sks toy"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    latents = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for pipe in (adapted, loaded):
            pipe.text_encoder.eval()
            pipe.unet.eval()
        text_want, text_got = adapted.text_encoder(ids)[0], loaded.text_encoder(ids)[0]
        base_text = load_pipeline(str(tiny_dir)).text_encoder(ids)[0]
        assert not torch.allclose(text_want, base_text, atol=1e-4)  # the adapter does change the output
        torch.testing.assert_close(text_got, text_want, atol=1e-5, rtol=1e-5)
        t = torch.tensor([500])
        torch.testing.assert_close(loaded.unet(latents, t, text_want).sample, adapted.unet(latents, t, text_want).sample,
                                   atol=1e-5, rtol=1e-5)

"""Metric maths, and the encoder code on tiny randomly initialised DINO/CLIP encoders built from configs.

Random encoders are fine here: the tests check the arithmetic (identical images give 1, known vectors give
known values, batching changes nothing), never that the numbers mean anything.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from boothline.evaluation.metrics import (EncoderUnavailable, cosine_matrix, diversity, load_clip, load_dino,
                               mean_matched_similarity, mean_pairwise_similarity, within_group_diversity)

CPU = torch.device("cpu")
IMAGE_SIZE = 32


def build_dino(directory: Path) -> Path:
    """A 2-layer ViT (no pooler, like facebook/dino-vits16 loaded as ViTModel) with its image processor."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                       image_size=IMAGE_SIZE, patch_size=8)
    ViTModel(config, add_pooling_layer=False).save_pretrained(directory)
    ViTImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(directory)
    return directory


def build_clip(directory: Path) -> Path:
    """A 2-layer CLIP with the tiny model's offline tokenizer and a CLIP image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from boothline.pipelines.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  image_size=IMAGE_SIZE, patch_size=8)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(directory)
    image_processor = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                         crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def encoder_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("encoders")
    return {"dino": build_dino(root / "dino"), "clip": build_clip(root / "clip")}


def noise_images(count: int, seed: int = 0, size: int = 48) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


# --- maths ---------------------------------------------------------------------------------------------

def test_known_vectors_give_known_similarities():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[3.0, 3.0], [-1.0, 0.0]])
    expected = torch.tensor([[1 / math.sqrt(2), -1.0], [1 / math.sqrt(2), 0.0]])
    assert torch.allclose(cosine_matrix(a, b), expected)
    assert mean_pairwise_similarity(a, b) == pytest.approx((2 / math.sqrt(2) - 1) / 4)
    assert mean_matched_similarity(a, b) == pytest.approx((1 / math.sqrt(2) + 0.0) / 2)
    assert mean_pairwise_similarity(a[:1], a[:1] * 5) == pytest.approx(1.0)


def test_matched_similarity_needs_equal_shapes():
    with pytest.raises(ValueError, match="same shape"):
        mean_matched_similarity(torch.ones(2, 3), torch.ones(3, 3))


def test_diversity_is_mean_pairwise_cosine_distance_within_each_prompt():
    same = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    orthogonal = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    opposite_three = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])  # distances 2, 1, 1
    assert within_group_diversity(same) == pytest.approx(0.0)
    assert within_group_diversity(orthogonal) == pytest.approx(1.0)
    assert within_group_diversity(opposite_three) == pytest.approx(4 / 3)
    assert within_group_diversity(torch.ones(1, 2)) is None
    assert diversity([same, orthogonal, torch.ones(1, 2)]) == pytest.approx(0.5)
    assert diversity([torch.ones(1, 2)]) is None


# --- encoders ------------------------------------------------------------------------------------------

def test_dino_identical_images_score_1_and_batching_changes_nothing(encoder_dirs):
    dino = load_dino(str(encoder_dirs["dino"]), CPU)
    images = noise_images(3)
    one_by_one = dino.embed_images(images, batch_size=1)
    together = dino.embed_images(images, batch_size=3)
    assert one_by_one.shape == (3, 32)
    assert torch.allclose(one_by_one, together, atol=1e-5)
    same = dino.embed_images([images[0]] * 2)
    assert mean_pairwise_similarity(same, same) == pytest.approx(1.0, abs=1e-5)
    assert mean_pairwise_similarity(one_by_one, one_by_one) < 1.0
    assert within_group_diversity(same) == pytest.approx(0.0, abs=1e-5)


def test_clip_scores_match_the_models_own_logits(encoder_dirs):
    from transformers import CLIPModel, CLIPProcessor

    clip = load_clip(str(encoder_dirs["clip"]), CPU)
    images = noise_images(2, seed=1)
    texts = ["a photo of a dog", "a red toy on the beach"]
    image_emb = clip.embed_images(images)
    text_emb = clip.embed_texts(texts, batch_size=1)
    assert image_emb.shape == text_emb.shape == (2, 16)
    assert torch.allclose(text_emb, clip.embed_texts(texts), atol=1e-5)
    assert mean_pairwise_similarity(image_emb[:1], clip.embed_images(images[:1])) == pytest.approx(1.0, abs=1e-5)

    model = CLIPModel.from_pretrained(encoder_dirs["clip"]).eval()
    processor = CLIPProcessor.from_pretrained(encoder_dirs["clip"])
    with torch.no_grad():
        out = model(**processor(text=texts, images=images, padding=True, return_tensors="pt"))
        cosines = out.logits_per_image / model.logit_scale.exp()
    assert mean_matched_similarity(image_emb, text_emb) == pytest.approx(float(cosines.diagonal().mean()), abs=1e-5)


def test_unset_encoders_are_unavailable_with_the_key_named():
    with pytest.raises(EncoderUnavailable, match="eval.dino_model is not set"):
        load_dino(None, CPU)
    with pytest.raises(EncoderUnavailable, match="eval.clip_model is not set"):
        load_clip("", CPU)


def test_encoders_that_cannot_be_loaded_offline_give_a_reason(tmp_path):
    with pytest.raises(EncoderUnavailable, match=r"eval.dino_model = 'facebook/dino-vits16': cannot be loaded"):
        load_dino("facebook/dino-vits16", CPU)  # HF_HUB_OFFLINE=1 in tests: never downloaded
    with pytest.raises(EncoderUnavailable, match="cannot be loaded"):
        load_clip(str(tmp_path / "nowhere"), CPU)


def test_an_encoder_with_missing_weights_is_refused(encoder_dirs, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    partial = shutil.copytree(encoder_dirs["dino"], tmp_path / "partial")
    weights = load_file(partial / "model.safetensors")
    del weights[next(k for k in weights if "encoder.layer.1" in k)]
    save_file(weights, partial / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(EncoderUnavailable, match="missing from the checkpoint"):
        load_dino(str(partial), CPU)


def test_the_wrong_kind_of_encoder_is_refused(encoder_dirs):
    with pytest.raises(EncoderUnavailable, match="not a ViT image encoder"):
        load_dino(str(encoder_dirs["clip"]), CPU)
    with pytest.raises(EncoderUnavailable, match="not a CLIP model"):
        load_clip(str(encoder_dirs["dino"]), CPU)

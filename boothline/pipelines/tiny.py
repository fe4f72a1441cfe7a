"""The embedded default base model: a tiny Stable-Diffusion-architecture pipeline built from configs.

It has the same components and classes as SD 1.5 (UNet2DConditionModel, AutoencoderKL, CLIP text encoder
and tokenizer, a PNDM scheduler configured like SD 1.5's) at a size that trains on two CPU cores. Weights
are seeded, so every build is identical. The CLIP tokenizer is a byte-level BPE trained offline on a small
corpus, so no vocabulary download is needed. `build_tiny_pipeline(dir)` saves it in diffusers format;
callers then load it with `from_pretrained` like any other checkpoint.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

# Bump when the architecture, seed or tokenizer changes, so saved copies are rebuilt.
TINY_VERSION = "6"
RESOLUTION = 64

# CLIP's pre-tokenisation: special tokens, contractions, letter runs, single digits, other symbol runs.
CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""

CORPUS = """
a photo of a dog a photo of sks dog a photo of a cat a photo of a toy a photo of sks toy a photo of a backpack
a painting of a teapot in the style of van gogh an oil painting watercolor anime cyberpunk pixel art line art
photographic cinematic 3d render ukiyo-e on the beach in the jungle in the snow on a wooden table in a city
with a red hat wearing sunglasses a wet shiny cube a purple fluffy cat high quality detailed lowres blurry
jpeg artifacts watermark text on top of pink fabric in front of the eiffel tower floating in the water
"""


def build_tokenizer(corpus: str = CORPUS, vocab_size: int = 1000):
    """A CLIPTokenizer whose BPE vocabulary is learned from `corpus`; every byte still maps to a token."""
    from tokenizers import Regex, pre_tokenizers
    from transformers import CLIPTokenizer

    # The same pieces CLIP's tokenizer makes: its split, then every byte as one printable character.
    split = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True),
                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    words = Counter(piece for piece, _ in split.pre_tokenize_str(corpus.lower()))
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate(
        ["<|startoftext|>", "<|endoftext|>", *alphabet, *(ch + "</w>" for ch in alphabet)])}
    merges = learn_merges({(*w[:-1], w[-1] + "</w>"): n for w, n in words.items()}, vocab_size - len(vocab))
    for first, second in merges:
        vocab.setdefault(first + second, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def learn_merges(words: dict[tuple[str, ...], int], count: int) -> list[tuple[str, str]]:
    """Byte-pair merges, the most frequent pair first and ties broken by the pair itself, so a corpus always
    gives the same merges (the `tokenizers` trainer breaks ties in hash order: another vocabulary each build)."""
    merges: list[tuple[str, str]] = []
    while len(merges) < count:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        words = {_merge(word, best): n for word, n in words.items()}
    return merges


def _merge(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(word):
        if word[i:i + 2] == pair:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def build_tiny_pipeline(out_dir: str | Path) -> Path:
    """Build the seeded tiny pipeline and save it (atomically) in diffusers format to `out_dir`."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    out_dir = Path(out_dir)
    tokenizer = build_tokenizer()
    devnull_rng = torch.random.fork_rng(devices=[])  # leave the caller's global RNG untouched
    with devnull_rng:
        torch.manual_seed(0)
        unet = UNet2DConditionModel(
            sample_size=RESOLUTION // 2,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            cross_attention_dim=32,
            attention_head_dim=8,
            # At 32x32 the latent attends to the text only; self-attention waits for 16x16. v4 self-attended
            # over all 1024 positions at 32x32: a default training step took 1.61 s on two CPU cores, 0.88 s
            # now. The default training's latent fidelity: 0.24-0.27 over train seeds 0 and 1 and 1 or 2
            # threads (v4 0.18). With no self-attention at 16x16 either, steps took 0.50 s but learning
            # swung from 0.05 to 0.23 with the seed and thread count; with no attention at 32x32, 0.001.
            only_cross_attention=(True, False),
            norm_num_groups=32,
        )
        torch.manual_seed(1)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            sample_size=RESOLUTION,
            # As SD defines it, 1 / std of the VAE's latents (measured: about 0.25 for this seeded VAE,
            # for photos and noise alike); SD's 0.18215 would leave latents at std 0.05, which noise drowns at
            # almost every timestep, so DreamBooth could not learn anything in a few hundred steps.
            scaling_factor=4.0,
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            block_out_channels=(32, 64),
            layers_per_block=1,
            norm_num_groups=32,
        )
        torch.manual_seed(2)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                hidden_act="quick_gelu",
                projection_dim=32,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        skip_prk_steps=True,
        set_alpha_to_one=False,
        # v-prediction, as SD 2.x: its target holds the clean latents at every noise level, so a model trained
        # from random weights learns in ~100 steps what each prompt should look like; with epsilon-prediction
        # the tiny UNet learns to ignore the text and a DreamBooth token carries no identity that soon.
        prediction_type="v_prediction",
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        pipe.save_pretrained(tmp, safe_serialization=True)
        (tmp / "BOOTHLINE_TINY_VERSION").write_text(TINY_VERSION + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def ensure_tiny_pipeline(out_dir: str | Path) -> Path:
    """The saved tiny pipeline directory, built first if missing or from an older builder version."""
    out_dir = Path(out_dir)
    marker = out_dir / "BOOTHLINE_TINY_VERSION"
    if marker.is_file() and marker.read_text().strip() == TINY_VERSION:
        return out_dir
    return build_tiny_pipeline(out_dir)

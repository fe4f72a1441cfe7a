"""The world CLIP: a `transformers.CLIPModel` built from a config and trained contrastively on the
captioned scenes; its text tower is also the built-in pipeline's (frozen) text encoder, as in Stable Diffusion.

The tokenizer is a byte-level BPE learned offline from the world's vocabulary (pipelines.tiny's builder),
so every word of the grammar, the style registry and the evaluation prompts is a token or a few.

Batches are built from groups of `GROUP` scenes that share context and style: in a random batch the
backdrop and the style alone tell captions apart (a first run reached 95% on contexts and 27% on classes),
while within a group only the object (class, colour, property, accessory) can. Beside the contrastive loss,
linear heads on the image embedding before normalising classify the renderer's labels (class, main colour,
context, style; boothline.pretraining.labels), weighted `label_weight`, the class head `class_weight` times
each other. Heads on the text embedding before normalising classify what every caption names (class, context,
style), weighted `text_label_weight`: trained contrastively against an image side blind to class, the text
tower had learnt to ignore the class word (a caption and the same caption with another class: cosine 0.97),
and the text tower is what the UNet is conditioned on. The heads read the embeddings before normalising: on
unit-length ones, a head's logits start near zero and barely move the towers (class stayed at chance).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from boothline.pretraining.arrays import load_dataset, pixels
from boothline.pretraining.labels import LabelHeads, WithHeads, label_codes
from boothline.pretraining.loop import Trainer, save_atomically
from boothline.pretraining.settings import Clip
from boothline.world import vocabulary as v
from boothline.world.captions import apply_template, registry_entries

log = logging.getLogger(__name__)
GROUP = 8  # scenes per (context, style) group in a batch
LABELS = ("noun", "main", "context", "style")
TEXT_LABELS = ("noun", "context", "style")  # what every caption names (colour: only some)


def world_corpus(styles: dict[str, dict]) -> str:
    """Text the tokenizer learns its merges from: the grammar's words, weighted like captions use them."""
    parts = [" ".join(v.COLOURS) * 3, " ".join(v.CLASSES) * 5, " ".join(v.CONTEXTS.values()) * 3,
             " ".join(v.PROPERTIES.values()), " ".join(v.ACCESSORIES.values()) * 2,
             "a photo of sitting high quality detailed sks " * 5]
    parts += [apply_template(s["prompt"], "a photo of a toy") + " " + s.get("negative", "") for s in styles.values()]
    parts.append("lowres, blurry, jpeg artifacts, watermark, text")
    return "\n".join(parts)


def build_clip(settings: Clip, tokenizer):
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    text = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=settings.hidden, intermediate_size=4 * settings.hidden,
                          num_hidden_layers=settings.layers, num_attention_heads=settings.heads,
                          max_position_embeddings=77, projection_dim=settings.projection, **ids)
    vision = CLIPVisionConfig(image_size=64, patch_size=settings.patch, hidden_size=settings.hidden,
                              intermediate_size=4 * settings.hidden, num_hidden_layers=settings.layers,
                              num_attention_heads=settings.heads, projection_dim=settings.projection)
    torch.manual_seed(settings.seed)
    return CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                                projection_dim=settings.projection))


def processor_for(tokenizer):
    from transformers import CLIPImageProcessor, CLIPProcessor

    images = CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64},
                                image_mean=[0.5] * 3, image_std=[0.5] * 3, do_resize=True, do_center_crop=True)
    return CLIPProcessor(image_processor=images, tokenizer=tokenizer)


def train_clip(settings: Clip, scenes_dir: Path, work_dir: Path, out_dir: Path,
               registry: Path = Path("registry/styles.yaml")) -> Path:
    from boothline.pipelines.tiny import build_tokenizer

    tokenizer = build_tokenizer(world_corpus(registry_entries(registry)), settings.vocab_size)
    model = build_clip(settings, tokenizer)
    images, items = load_dataset(scenes_dir)
    captions = items["caption"].tolist()
    groups = [indices for _, indices in sorted(items.groupby(["context", items["style"].fillna("")]).indices.items())
              if len(indices) >= 2] or [np.arange(len(captions))]  # (a toy-sized dataset: whatever it has)

    heads = torch.nn.ModuleDict({
        "image": LabelHeads(settings.projection, label_codes(items, LABELS), {"noun": settings.class_weight}),
        "text": LabelHeads(settings.projection, label_codes(items, TEXT_LABELS))})
    both = WithHeads(model, heads)

    def loss(step: int, generator: torch.Generator) -> torch.Tensor:
        chosen = torch.randperm(len(groups), generator=generator)[: settings.batch_size // GROUP]
        batch = np.sort(np.concatenate([groups[g][torch.randperm(len(groups[g]), generator=generator)[:GROUP].numpy()]
                                        for g in chosen.tolist()]))
        tokens = tokenizer([captions[i] for i in batch], padding=True, truncation=True, return_tensors="pt")
        out = model(**tokens, pixel_values=pixels(images[batch]), return_loss=True)
        # transformers 5: the towers' pooler_output here is the projected embedding, before normalising
        image, text = out.vision_model_output.pooler_output, out.text_model_output.pooler_output
        labelled = settings.label_weight * heads["image"].loss(image, batch)
        if settings.text_label_weight:
            labelled = labelled + settings.text_label_weight * heads["text"].loss(text, batch)
        return out.loss + labelled

    data_hash = hashlib.sha256((scenes_dir / "items.parquet").read_bytes()).hexdigest()[:16]
    fingerprint = f"{settings.model_dump_json()} data={data_hash} group={GROUP} labels={LABELS} text={TEXT_LABELS}"
    trainer = Trainer(both, work_dir, steps=settings.steps, lr=settings.learning_rate, seed=settings.seed,
                      fingerprint=fingerprint)
    trained = trainer.run(loss).encoder
    processor = processor_for(tokenizer)

    def save(tmp: Path) -> None:
        trained.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)

    return save_atomically(save, out_dir)

"""Latent-space fidelity: does the subject token pull generations towards the subject's own latents?

Unlike DINO or CLIP scores this needs no extra encoder, so it is meaningful for any model, the tiny one
included. Definitions (all cosine similarities of flattened, per-channel-centred latents):

- `mean_similarity(A, R)`: mean over every pair (a in A, r in R) of cos(a, r);
- `latent_fidelity = mean_similarity(G_instance, R) - mean_similarity(G_class, R)`, where R are the VAE latents
  (`boothline.pipelines.latents`) of the real subject images, G_instance latents generated for the instance prompt
  ("a photo of sks toy") and G_class for the class prompt ("a photo of a toy"), with the same seeds. Above zero: the
  token carries the subject's identity; an untrained base model scores about zero.

Centring each latent per channel removes the colour cast that every image of a dataset shares, so the
score measures layout and shape rather than overall brightness.
"""

from __future__ import annotations

import torch


def _centred_unit(latents: torch.Tensor) -> torch.Tensor:
    x = latents.flatten(2)
    x = x - x.mean(dim=2, keepdim=True)
    x = x.flatten(1)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def mean_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean cosine similarity over all pairs of (a_i, b_j), latents shaped (N, C, H, W)."""
    return float((_centred_unit(a) @ _centred_unit(b).T).mean())


def latent_fidelity(instance_generated: torch.Tensor, class_generated: torch.Tensor,
                    reference: torch.Tensor) -> dict[str, float]:
    instance = mean_similarity(instance_generated, reference)
    klass = mean_similarity(class_generated, reference)
    return {"latent_fidelity": instance - klass, "instance_similarity": instance, "class_similarity": klass}

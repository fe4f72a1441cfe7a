"""Auxiliary label heads: linear classifiers on an encoder's image embedding, one per renderer label.

The renderer knows what it drew (class, colour, context, style, shape variant, ...). A linear head per
label, trained with cross-entropy beside the encoder's own loss, makes the embedding itself separate those
factors: contrastive losses alone learnt backdrops and styles and left class at chance (WORLD.md). The heads
are dropped at export; only the encoder ships.
"""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F

from boothline.world.vocabulary import COLOURLESS_STYLES

COLOUR_COLUMNS = ("main", "part", "accent")


def label_codes(items: pd.DataFrame, columns: tuple[str, ...]) -> dict[str, tuple[torch.Tensor, int]]:
    """Each column's values as integer codes (missing values, e.g. no style, are one more class) and the count."""
    colourless = items["style"].isin(COLOURLESS_STYLES).to_numpy()
    codes = {}
    for column in columns:
        values = items[column].astype("object").where(items[column].notna(), "none").astype(str)
        if column in COLOUR_COLUMNS:  # a style that hides colour shows none: its own class, not noise
            values = values.where(~colourless, "hidden")
        categorical = pd.Categorical(values, categories=sorted(values.unique()))
        codes[column] = (torch.from_numpy(categorical.codes.astype("int64")), len(categorical.categories))
    return codes


class LabelHeads(torch.nn.Module):
    def __init__(self, width: int, codes: dict[str, tuple[torch.Tensor, int]], weights: dict[str, float] | None = None):
        super().__init__()
        self.codes = {column: labels for column, (labels, _) in codes.items()}
        self.heads = torch.nn.ModuleDict({column: torch.nn.Linear(width, n) for column, (_, n) in codes.items()})
        self.weights = {column: (weights or {}).get(column, 1.0) for column in codes}

    def loss(self, embedding: torch.Tensor, rows) -> torch.Tensor:
        """Cross-entropy over the labels of dataset rows `rows` (the rows the embeddings are of), averaged
        with `weights` (1 for a label not named)."""
        rows = torch.as_tensor(rows)
        losses = torch.stack([self.weights[column] * F.cross_entropy(head(embedding), self.codes[column][rows])
                              for column, head in self.heads.items()])
        return losses.sum() / sum(self.weights.values())


class WithHeads(torch.nn.Module):
    """The encoder and its heads as one module, so checkpoints and resumes carry both."""

    def __init__(self, encoder: torch.nn.Module, heads: torch.nn.Module):
        super().__init__()
        self.encoder, self.heads = encoder, heads

"""Evaluating a trained model as the DreamBooth paper does: the prompt protocol, the DINO / CLIP-I / CLIP-T /
PRES / DIV metrics and latent fidelity, scoring models and checkpoints, and the report with its plots."""

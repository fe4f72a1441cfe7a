"""Stable Diffusion pipelines: loading any base model through one path, the built-in tiny model, devices and
processes, torch.compile, and rendering seeded batches of images."""

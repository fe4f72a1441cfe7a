"""boothline: personalise Stable Diffusion with DreamBooth, from validated photos to a registered model."""

__version__ = "0.1.0"

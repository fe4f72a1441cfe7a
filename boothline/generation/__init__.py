"""Generating images from a model: what `--model` means, job planning and running, prompt enhancement, the
style registry, the Parquet history and bit-exact regeneration."""

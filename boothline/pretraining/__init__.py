"""Pretraining the built-in world model and its encoders (`pretrain/dvc.yaml`): render a dataset of the
procedural world, train a CLIP, a VAE, an identity encoder and the UNet, then export and evaluate them.
"""

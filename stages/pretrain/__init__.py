"""Pretraining stages of the built-in world model (`pretrain/dvc.yaml`), one module each."""

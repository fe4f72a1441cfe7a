"""Every path the pipeline reads or writes, defined once, relative to the project directory (the current
directory, where params.yaml and data/ live). DESIGN.md's "outputs" names these; dvc.yaml lists them again."""

from pathlib import Path

DATA = Path("data")
DEMO_SUBJECT_DIR = DATA / "subjects/demo"  # the committed demo photos

VALIDATED_DIR = DATA / "validated"  # validate
VALIDATED_MANIFEST = VALIDATED_DIR / "manifest.parquet"
PRIORS_DIR = DATA / "priors"  # priors
PRIORS_MANIFEST = PRIORS_DIR / "manifest.parquet"
CHECKPOINTS = DATA / "checkpoints"  # train
VALIDATION_DIR = CHECKPOINTS / "validation"
MODEL_DIR = DATA / "model"
TRAIN_DIR = DATA / "train"
TRAIN_SUMMARY = TRAIN_DIR / "summary.json"
TRAIN_METRICS = TRAIN_DIR / "metrics.csv"
EVAL_DIR = DATA / "eval"  # evaluate
EVAL_METRICS = EVAL_DIR / "metrics.json"
REGISTRY_FILE = DATA / "registry.json"  # register
GENERATIONS_DIR = DATA / "generations"  # generate
JOBS_DIR = DATA / "jobs"  # boothline generate and the batch flow
HISTORY_DIR = DATA / "history"
REGENERATED_DIR = DATA / "regenerated"  # boothline regenerate

TINY_DIR = DATA / "base/tiny"  # the built-in model, built on first use
CACHE = DATA / "cache"
COMPILE_CACHE_DIR = CACHE / "torch-compile"
REGISTRY_CACHE = CACHE / "registry"  # registry downloads, per version and run
HASH_CACHE = CACHE / "weight-hashes"  # of hub models
STAGE_OUTPUTS_RECORD = CACHE / "prefect-stage-outputs.json"  # which inputs made the outputs on disk

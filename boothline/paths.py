"""Every path the pipeline reads or writes, defined once.

What a pipeline produces lives in a workspace: a directory with a `data/` tree per subject, so several
subjects run side by side (in one process or in several) without touching each other's files. The default
workspace is the current directory, which is what `dvc repro` and every command use unless told otherwise
(`--workspace DIR`). DESIGN.md's "outputs" names these; dvc.yaml lists them again.

Relative paths inside a params file (the photos, a class-image folder, a base model) still resolve from the
current directory, and so do the shared caches below.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEMO_SUBJECT_DIR = Path("data/subjects/demo")  # the committed demo photos
TINY_DIR = Path("data/base/tiny")  # the built-in model, built on first use, shared by every workspace
COMPILE_CACHE_DIR = Path("data/cache/torch-compile")  # compiled kernels depend on the code, not the subject
HASH_CACHE = Path("data/cache/weight-hashes")  # of models in the Hugging Face cache, shared like that cache


@dataclass(frozen=True)
class Workspace:
    root: Path = Path(".")

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def resolve(self, path: str | Path) -> Path:
        """A path given relative to the workspace (a params value such as the tracking store), made usable."""
        return Path(path) if Path(path).is_absolute() else self.root / path

    def tracking_uri(self, uri: str) -> str:
        """A relative sqlite store or a plain path (`register.tracking_uri`) lies inside the workspace; an
        absolute one or a tracking server stays as it is."""
        if uri.startswith("sqlite:///") and not uri.removeprefix("sqlite:///").startswith("/"):
            return f"sqlite:///{self.resolve(uri.removeprefix('sqlite:///'))}"
        return str(self.resolve(uri)) if "://" not in uri and not uri.startswith("file:") else uri

    @property
    def data(self) -> Path:
        return self.root / "data"

    # validate
    @property
    def validated_dir(self) -> Path:
        return self.data / "validated"

    @property
    def validated_manifest(self) -> Path:
        return self.validated_dir / "manifest.parquet"

    # priors
    @property
    def priors_dir(self) -> Path:
        return self.data / "priors"

    @property
    def priors_manifest(self) -> Path:
        return self.priors_dir / "manifest.parquet"

    # train
    @property
    def checkpoints(self) -> Path:
        return self.data / "checkpoints"

    @property
    def validation_dir(self) -> Path:
        return self.checkpoints / "validation"

    @property
    def model_dir(self) -> Path:
        return self.data / "model"

    @property
    def train_dir(self) -> Path:
        return self.data / "train"

    @property
    def train_summary(self) -> Path:
        return self.train_dir / "summary.json"

    @property
    def train_metrics(self) -> Path:
        return self.train_dir / "metrics.csv"

    # evaluate
    @property
    def eval_dir(self) -> Path:
        return self.data / "eval"

    @property
    def eval_metrics(self) -> Path:
        return self.eval_dir / "metrics.json"

    # register
    @property
    def registry_file(self) -> Path:
        return self.data / "registry.json"

    # generate, `boothline generate`, the batch flow, `boothline regenerate`
    @property
    def generations_dir(self) -> Path:
        return self.data / "generations"

    @property
    def jobs_dir(self) -> Path:
        return self.data / "jobs"

    @property
    def history_dir(self) -> Path:
        return self.data / "history"

    @property
    def regenerated_dir(self) -> Path:
        return self.data / "regenerated"

    # caches of this workspace
    @property
    def registry_cache(self) -> Path:
        return self.data / "cache/registry"  # registry downloads, per version and run

    def flow_run_heartbeat(self, flow_run_id: str) -> Path:
        """Touched every few seconds while a Prefect flow run works in this workspace (flows.heartbeat)."""
        return self.data / "flow-runs" / f"{flow_run_id}.alive"

    @property
    def stage_outputs_record(self) -> Path:
        return self.data / "cache/prefect-stage-outputs.json"  # which inputs made the outputs on disk

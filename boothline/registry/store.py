"""The MLflow side of registration: one run per registration, the model version, aliases and the gate.

- Store: any MLflow tracking URI. A local one (`sqlite:///...`) gets its experiment's artifacts in
  `register.artifact_location`; a tracking server keeps its own artifact store.
- Model: the pyfunc in `boothline/registry/pyfunc_model.py`, logged from code with the model directory as the
  artifact "pipeline" and the boothline package as code, so it loads anywhere its pip requirements install.
- Identity: every version carries the tag `boothline.model_key` (training fingerprint + step); a model
  whose key is already registered is not registered again.
- Gate: alias `candidate` goes to every new version; `champion` moves to a version only when its metrics
  meet `register.thresholds` and its primary metric is not worse than the current champion's. The
  decision and its reasons are version tags.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from importlib.metadata import version as installed_version
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

from boothline.evaluation.metrics import HIGHER_IS_BETTER
from boothline.registry.pyfunc_model import DEFAULT_PARAMS, PIPELINE_ARTIFACT

CANDIDATE = "candidate"
CHAMPION = "champion"
MODEL_KEY_TAG = "boothline.model_key"
PROMOTED_TAG = "boothline.promoted"
REASONS_TAG = "boothline.gate_reasons"
EVAL_PREFIX = "eval."  # run metrics holding the registered model's evaluation scores
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the boothline package, logged as code
PYFUNC_FILE = Path(__file__).resolve().parent / "pyfunc_model.py"
# Libraries that read the saved weights are pinned to the versions that wrote them.
PINNED = ("diffusers", "transformers", "tokenizers", "accelerate", "safetensors", "peft")
UNPINNED = ("torch>=2.3", "pillow>=10", "numpy", "pandas>=2.1", "pydantic>=2.6,<3", "pyyaml>=6")

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec(DataType.string)]),  # unnamed: a list of prompts, or a DataFrame's `prompt` column
    outputs=Schema([ColSpec(DataType.binary)]),  # one PNG per prompt
    params=ParamSchema([
        ParamSpec("negative_prompt", DataType.string, DEFAULT_PARAMS["negative_prompt"]),
        ParamSpec("seed", DataType.long, DEFAULT_PARAMS["seed"]),
        ParamSpec("steps", DataType.long, DEFAULT_PARAMS["steps"]),
        ParamSpec("guidance", DataType.double, DEFAULT_PARAMS["guidance"]),
        ParamSpec("width", DataType.long, DEFAULT_PARAMS["width"]),
        ParamSpec("height", DataType.long, DEFAULT_PARAMS["height"]),
        ParamSpec("scheduler", DataType.string, DEFAULT_PARAMS["scheduler"]),
    ]),
)


def pip_requirements() -> list[str]:
    return [*(f"{name}=={installed_version(name)}" for name in PINNED), *UNPINNED]


def is_local_store(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri


def connect(tracking_uri: str) -> MlflowClient:
    """A client for `tracking_uri` (also made the process's default, for the fluent run API).

    A relative sqlite path is made absolute: MLflow caches one store per URI string, so a relative one
    would keep pointing at the first directory it was used from."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in stage logs
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri.removeprefix("sqlite:///")).absolute()
        database.parent.mkdir(parents=True, exist_ok=True)
        tracking_uri = f"sqlite:///{database}"
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def experiment_id(client: MlflowClient, name: str, artifact_location: str | None, tracking_uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    location = Path(artifact_location).resolve().as_uri() if artifact_location and is_local_store(tracking_uri) else None
    return client.create_experiment(name, artifact_location=location)


def find_version(client: MlflowClient, name: str, model_key: str) -> ModelVersion | None:
    """The (first) version of `name` registered for `model_key`, if any."""
    found = client.search_model_versions(f"name = '{name}' and tags.`{MODEL_KEY_TAG}` = '{model_key}'")
    return min(found, key=lambda v: int(v.version)) if found else None


@dataclass
class Submission:
    """Everything one registration logs besides the model itself."""

    model_key: str
    params: dict[str, str]
    metrics: dict[str, float]  # the registered model's evaluation scores, training summary...
    histories: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # (step, value) curves
    artifacts: list[tuple[str, Path]] = field(default_factory=list)  # (artifact folder, local file or directory)
    tags: dict[str, str] = field(default_factory=dict)
    version_tags: dict[str, str] = field(default_factory=dict)
    run_name: str | None = None


def link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # free on the same filesystem; the pipeline can be gigabytes
    except OSError:
        shutil.copy2(src, dst)


def log_pyfunc(model_dir: Path):
    """Log the pyfunc for `model_dir` in the active run; the directory lands in artifacts/pipeline."""
    # MLflow names the artifact folder after the directory it is given, and refuses symlinks: stage a
    # hard-linked copy named "pipeline" beside the model (same filesystem).
    with tempfile.TemporaryDirectory(prefix=".register-", dir=model_dir.resolve().parent) as tmp:
        staged = Path(tmp) / PIPELINE_ARTIFACT
        shutil.copytree(model_dir, staged, copy_function=link_or_copy)
        code = Path(tmp) / "code" / PACKAGE_DIR.name
        shutil.copytree(PACKAGE_DIR, code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        with warnings.catch_warnings():
            # No input example on purpose: MLflow would load the whole pipeline and render with it while logging.
            warnings.filterwarnings("ignore", message=".*An input example was not provided")
            return mlflow.pyfunc.log_model(
                name="model", python_model=str(PYFUNC_FILE), artifacts={PIPELINE_ARTIFACT: str(staged)},
                code_paths=[str(code)], signature=SIGNATURE, pip_requirements=pip_requirements(),
            )


def log_and_register(client: MlflowClient, experiment: str, name: str, model_dir: Path,
                     submission: Submission) -> ModelVersion:
    """One run with everything in `submission` and the model; a new version of `name` with alias candidate."""
    with mlflow.start_run(experiment_id=experiment, run_name=submission.run_name, tags=submission.tags) as run:
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, 0) for key, value in submission.metrics.items()]
        metrics += [Metric(key, float(value), now, int(step)) for key, curve in submission.histories.items()
                    for step, value in curve]
        client.log_batch(run_id, metrics=metrics,
                         params=[Param(key, value) for key, value in submission.params.items()])
        for folder, path in submission.artifacts:
            if path.is_dir():
                client.log_artifacts(run_id, str(path), folder)
            elif path.is_file():
                client.log_artifact(run_id, str(path), folder)
        info = log_pyfunc(model_dir)
    version = mlflow.register_model(info.model_uri, name,
                                    tags={MODEL_KEY_TAG: submission.model_key, **submission.version_tags})
    client.set_registered_model_alias(name, CANDIDATE, version.version)
    return client.get_model_version(name, version.version)


# --- the promotion gate --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    promoted: bool
    reasons: list[str]


def decide(metrics: dict, thresholds: dict[str, float], primary: str, version: int,
           champion: int | None, champion_value: float | None) -> Decision:
    """Promote when every threshold is met and `primary` is not worse than the champion's."""
    ok, reasons = True, []
    for key, limit in sorted(thresholds.items()):
        value, higher = metrics.get(key), HIGHER_IS_BETTER[key]
        wanted = f"{key} {'>=' if higher else '<='} {limit:g}"
        if value is None:
            ok = False
            reasons.append(f"{key} is null ({metrics.get(f'{key}_reason', 'not computed')}): cannot check {wanted}")
        elif value >= limit if higher else value <= limit:
            reasons.append(f"{key} = {value:.6g} meets {wanted}")
        else:
            ok = False
            reasons.append(f"{key} = {value:.6g} fails {wanted}")
    value = metrics.get(primary)
    if value is None:
        ok = False
        reasons.append(f"primary metric {primary} is null ({metrics.get(f'{primary}_reason', 'not computed')})")
    elif champion is None:
        reasons.append("there is no champion yet")
    elif champion == version:
        reasons.append(f"version {version} is already the champion")
    elif champion_value is None:
        reasons.append(f"champion version {champion} has no {primary} to compare with")
    elif value >= champion_value if HIGHER_IS_BETTER[primary] else value <= champion_value:
        reasons.append(f"{primary} = {value:.6g} is not worse than champion version {champion}'s {champion_value:.6g}")
    else:
        ok = False
        reasons.append(f"{primary} = {value:.6g} is worse than champion version {champion}'s {champion_value:.6g}")
    if not ok and champion == version:  # demoting would leave `@champion` pointing nowhere
        reasons.append(f"version {version} stays the champion: the gate only promotes (a better version takes the "
                       f"alias, or delete it by hand)")
    return Decision(ok, reasons)


def champion_of(client: MlflowClient, name: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def logged_metric(client: MlflowClient, version: ModelVersion, key: str) -> float | None:
    if not version.run_id:
        return None
    return client.get_run(version.run_id).data.metrics.get(EVAL_PREFIX + key)


def apply_gate(client: MlflowClient, name: str, version: ModelVersion, metrics: dict, thresholds: dict[str, float],
               primary: str) -> Decision:
    """Decide, move `champion` if promoted, and record the decision as version tags."""
    champion = champion_of(client, name)
    champion_number = int(champion.version) if champion else None
    champion_value = logged_metric(client, champion, primary) if champion else None
    decision = decide(metrics, thresholds, primary, int(version.version), champion_number, champion_value)
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, version.version)
    client.set_model_version_tag(name, version.version, PROMOTED_TAG, str(decision.promoted).lower())
    client.set_model_version_tag(name, version.version, REASONS_TAG, "; ".join(decision.reasons))
    return decision

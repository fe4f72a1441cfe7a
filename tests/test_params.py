"""Params are parsed once into typed objects; invalid values name the key, the value and what is allowed."""

import pytest
import yaml

from boothline.errors import ParamsError
from boothline.params import load_params, parse_params
from conftest import REPO


def shipped() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_shipped_params_are_valid():
    p = load_params(REPO / "params.yaml")
    assert p.model.base == "builtin:world"
    assert (p.eval.clip_model, p.eval.dino_model) == ("builtin:world-clip", "builtin:world-identity")
    assert p.register.primary_metric == "dino"
    assert p.instance_prompt == "a photo of sks toy"
    assert p.class_prompt == "a photo of a toy"
    assert p.fill("{subject} on a beach") == "sks toy on a beach"


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("train", "max_train_steps", -5, "train.max_train_steps = -5: Input should be greater than or equal to 1"),
        ("train", "resolution", 500, "train.resolution = 500: must be a multiple of 8"),
        ("model", "scheduler", "karras-magic", "model.scheduler = 'karras-magic': Input should be 'dpm++'"),
        ("subject", "class_noun", "  ", "subject.class_noun = '  ': must not be empty"),
        ("subject", "token", "two words", "subject.token = 'two words': must be one non-empty word"),
        ("subject", "kind", "plant", "subject.kind = 'plant': Input should be 'object' or 'live'"),
        ("priors", "guidance", "lots", "priors.guidance = 'lots': Input should be a valid number"),
        ("train", "mixed_precision", "fp8", "train.mixed_precision = 'fp8'"),
        ("generate", "styles", ["Oil Painting"], "style names are slugs"),
        ("train", "learning_rate", 0, "train.learning_rate = 0: Input should be greater than 0"),
        ("train", "compute_copies", True, "train.compute_copies = true needs train.mixed_precision = 'bf16' (got 'no')"),
        ("model", "compile_mode", "turbo", "model.compile_mode = 'turbo': Input should be 'default'"),
    ],
)
def test_invalid_value_names_key_value_and_allowed(section, key, value, expected):
    data = shipped()
    data[section][key] = value
    with pytest.raises(ParamsError) as err:
        parse_params(data, "params.yaml")
    assert expected in str(err.value)
    assert str(err.value).startswith("params.yaml: invalid params")


def test_every_problem_is_reported_at_once():
    data = shipped()
    data["train"]["resolution"] = 63
    data["priors"]["num_images"] = -1
    with pytest.raises(ParamsError) as err:
        parse_params(data)
    assert "train.resolution" in str(err.value) and "priors.num_images" in str(err.value)


def test_token_missing_from_instance_prompt():
    data = shipped()
    data["train"]["instance_prompt"] = "a photo of a toy"
    with pytest.raises(ParamsError, match="train.instance_prompt = 'a photo of a toy': must contain the subject token"):
        parse_params(data)


def test_unknown_key_and_missing_section():
    data = shipped()
    data["train"]["max_steps"] = 10
    with pytest.raises(ParamsError, match="train.max_steps: unknown key"):
        parse_params(data)
    with pytest.raises(ParamsError, match="subject: is required"):
        parse_params({"model": {"base": "builtin:tiny"}})


def test_unreadable_files(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_relative_paths_stay_relative_to_cwd(tmp_path):
    data = shipped()
    data["subject"]["instance_dir"] = "photos/rex"
    assert str(parse_params(data).subject.instance_dir) == "photos/rex"


@pytest.mark.parametrize(("section", "refused", "message", "accepted"), [
    # A CUDA graph's next replay overwrites the gradients accumulation would add to.
    ("train", {"compile": True, "compile_mode": "reduce-overhead", "gradient_accumulation_steps": 2},
     r"train.compile_mode = 'reduce-overhead' captures CUDA graphs, which cannot accumulate .* "
     r"train.gradient_accumulation_steps = 1 \(got 2\)", {"compile_mode": "max-autotune-no-cudagraphs"}),
    ("train", {"lr_scheduler": "constant", "lr_warmup_steps": 100},
     r"train.lr_warmup_steps = 100 has no effect with train.lr_scheduler = 'constant': use 'constant_with_warmup'",
     {"lr_scheduler": "constant_with_warmup"}),
    ("train", {"compute_copies": True, "mixed_precision": "bf16", "use_8bit_adam": True},
     r"train.compute_copies = true keeps fp32 master weights for AdamW; 8-bit Adam \(train.use_8bit_adam\) does "
     r"not take them", {"use_8bit_adam": False}),
    ("train", {"instance_prompt": "a photo of {tokn} {class_noun}"},
     r"train.instance_prompt = 'a photo of \{tokn\} \{class_noun\}': unknown placeholder\(s\) \{tokn\}",
     {"instance_prompt": "a photo of {subject}"}),
    ("train", {"validate_every": 5, "validation_prompts": []},
     r"train.validate_every = 5 but train.validation_prompts is empty", {"validation_prompts": ["{subject}"]}),
])
def test_settings_that_cannot_work_together_are_refused(section, refused, message, accepted):
    data = shipped()
    data[section].update(refused)
    with pytest.raises(ParamsError, match=message):
        parse_params(data, "params.yaml")
    data[section].update(accepted)
    parse_params(data, "params.yaml")


def test_deterministic_runs_refuse_compiled_kernels():
    data = shipped()
    data["model"]["deterministic"] = True
    data["train"]["compile"] = True
    with pytest.raises(ParamsError, match=r"model.deterministic = true promises bit-for-bit repeats, .* "
                                          r"set train.compile to false, or model.deterministic to false"):
        parse_params(data, "params.yaml")
    data["train"]["compile"] = False
    assert parse_params(data, "params.yaml").model.deterministic


def test_seeds_stay_in_the_range_image_tools_and_the_history_hold():
    data = shipped()
    data["generate"]["seed"] = 2**40
    with pytest.raises(ParamsError, match=r"generate.seed = 1099511627776: Input should be less than or equal to "
                                          r"4294967295"):
        parse_params(data, "params.yaml")
    data["generate"].update(seed=0, seeds=[1, 2**40])
    with pytest.raises(ParamsError, match=r"each seed between 0 and 4294967295"):
        parse_params(data, "params.yaml")


def test_an_unknown_builtin_model_lists_the_known_ones():
    with pytest.raises(ParamsError, match="'builtin:wrold' is not a built-in model .*builtin:world, builtin:tiny"):
        parse_params({"subject": {"class_noun": "toy"}, "model": {"base": "builtin:wrold"}})

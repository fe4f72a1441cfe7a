"""Typed, validated pipeline parameters: `params.yaml` parsed once, checked before any work starts.

One section per stage. Relative paths are kept relative, so they resolve from the current directory.
An invalid file raises `ParamsError` whose message names the key, the value and what is allowed.
"""

from boothline.params.loading import Params, deep_merge, dotted, format_errors, load_params, parse_params
from boothline.params.sections import (CUDA_GRAPH_MODES, MAX_SEED, SLUG, CompileMode, Eval, Generate, MetricName,
                                       Model, Priors, Register, SchedulerName, Section, Subject, Sweep)
from boothline.params.service import Service, Uploads
from boothline.params.templates import SUBJECT_PLACEHOLDERS, fill_subject, unknown_placeholders
from boothline.params.training import Lora, Train

__all__ = ["CUDA_GRAPH_MODES", "MAX_SEED", "SLUG", "SUBJECT_PLACEHOLDERS", "CompileMode", "Eval", "Generate",
           "Lora", "MetricName", "Model", "Params", "Priors", "Register", "SchedulerName", "Section", "Service",
           "Subject", "Sweep", "Train", "deep_merge", "dotted", "fill_subject", "format_errors", "load_params", "parse_params",
           "unknown_placeholders", "Uploads"]

"""The file an annotation tool needs beside the records: Label Studio's labelling config, Argilla's settings.

``OUTPUT.label-config.xml`` (``--format label-studio``) and ``OUTPUT.argilla-settings.json``
(``--format argilla``) follow the output's rules: a fresh run refuses to replace one without
``--overwrite``, and each is written whole or not at all (a temporary file, then a rename).
With fixed labels they are written when the run starts (and again, identical, on ``--resume``);
with ``--labels-field`` the labels are known only at the end, so they are written when the run
completes, from every label the records named (first seen first).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from zsl_onnx import InvalidInputError

from .annotation import argilla_settings, label_config
from .options import ClassifyOptions
from .plan import Plan

__all__ = ["SIDECAR_SUFFIXES", "check_sidecar", "sidecar_path", "sidecar_text", "write_sidecar"]

SIDECAR_SUFFIXES = {"label-studio": ".label-config.xml", "argilla": ".argilla-settings.json"}


def sidecar_path(plan: Plan) -> Path | None:
    """Where the format's config goes; None for formats without one, and for stdout."""
    suffix = SIDECAR_SUFFIXES.get(plan.output_format)
    return None if suffix is None or plan.output is None else plan.output.with_name(plan.output.name + suffix)


def sidecar_text(options: ClassifyOptions, fmt: str, labels: list[str]) -> str:
    if fmt == "label-studio":
        return label_config(labels, options.multi_label, options.field_prefix)
    return json.dumps(argilla_settings(labels, options.multi_label), ensure_ascii=False, indent=2) + "\n"


def check_sidecar(options: ClassifyOptions, plan: Plan) -> None:
    """A fresh run never replaces a config it did not write, unless --overwrite; a stale one then goes."""
    path = sidecar_path(plan)
    if path is None or options.resume or not os.path.lexists(path):
        return
    if not options.overwrite:
        raise InvalidInputError(f"{path} exists; pass --overwrite to replace it (and {plan.output}).")
    if options.labels_field is not None:
        path.unlink()  # written again when the run completes; until then none is better than a stale one


def write_sidecar(options: ClassifyOptions, plan: Plan, labels: list[str]) -> None:
    path = sidecar_path(plan)
    if path is None or not labels:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(sidecar_text(options, plan.output_format, labels), encoding="utf-8")
    os.replace(tmp, path)

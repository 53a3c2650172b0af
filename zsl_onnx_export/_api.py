"""export_bundle(): a transformers model -> a validated zsl-onnx bundle, as a pipeline of steps.

check the request -> resolve the source -> load -> export fp32 -> validate -> head-token
rewrite -> int8 through the accuracy guard -> optional fp16 -> write the manifest -> move into
place. Each step is a function of one :class:`ExportJob` (see ``_job``); a source kind is a
tuple of steps, so another kind of model, or another int8 step, is one more entry here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsl_onnx.internals import DEFAULT_HUB_TIMEOUT, DEFAULT_TEMPLATE

from ._checks import check_not_nested
from ._embedding_export import EMBEDDING_STEPS, load_sentence_transformer
from ._fp16 import convert_to_fp16
from ._fp32 import export_fp32, rewrite_head_token, validate_fp32
from ._guard import GuardReport
from ._int8 import quantize_int8
from ._job import ExportJob, ExportOptions, Progress, Step
from ._manifest import write_manifest
from ._quantize import BASE_CANDIDATES, QuantConfig
from ._source import check_request, load_nli, resolve_source
from ._st_source import materialized
from ._staging import move_into_place, restore_retired, staging_dir

# Per source kind: the load step (before anything is written), then the steps that build the
# bundle in its staging directory, in order.
PIPELINES: dict[str, tuple[Step, tuple[Step, ...]]] = {
    "nli": (load_nli, (export_fp32, validate_fp32, rewrite_head_token, quantize_int8, convert_to_fp16,
                       write_manifest)),
    "embedding": (load_sentence_transformer, EMBEDDING_STEPS),
}


def source_kind(source: Path) -> str:
    """Which pipeline exports the model in ``source``: a sentence-transformers model (it has
    modules.json) gives an embedding bundle."""
    return "embedding" if (source / "modules.json").is_file() else "nli"


@dataclass(frozen=True)
class ExportResult:
    output: Path
    manifest: dict[str, Any]
    guard: GuardReport | None  # None when int8 was not requested


def export_bundle(
    model: str | Path,
    output: str | Path,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    template: str = DEFAULT_TEMPLATE,
    quantize_int8: bool = True,
    min_agreement: float = 0.99,
    calibration_file: str | Path | None = None,
    calibration_labels: Sequence[str] | None = None,
    keep_lossy_int8: bool = False,
    int8_candidates: Sequence[QuantConfig] = BASE_CANDIDATES,
    measure_int8_speed: bool = True,
    fp16: bool = False,
    validate: bool = True,
    atol: float = 1e-3,
    overwrite: bool = False,
    cache_dir: str | Path | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
    local_files_only: bool = False,
    hub_timeout: float | None = DEFAULT_HUB_TIMEOUT,
) -> ExportResult:
    """Export ``model`` (a Hub id or a local transformers directory) to a bundle in ``output``.

    A sentence-transformers model (a directory with modules.json, a .zip of one, or
    ``package:<module>``, an installed package that ships model.zip) gives an embedding bundle.

    Validation is on by default: fp32 logits must match PyTorch within ``atol`` on built-in
    pairs or the export fails. int8 is kept only if a candidate agrees with fp32 on at least
    ``min_agreement`` of held-out calibration pairs (``keep_lossy_int8`` keeps the best one
    anyway); fp16 (for GPUs) must agree as well. ``threads`` is for the speed measurements,
    which ``measure_int8_speed=False`` skips.
    ``local_files_only`` never contacts the Hub; ``hub_timeout`` bounds each Hub request (seconds).
    """
    options = ExportOptions(
        model=model, output=Path(output), revision=revision, trust_remote_code=trust_remote_code,
        template=template, quantize_int8=quantize_int8, min_agreement=min_agreement,
        calibration_file=calibration_file, calibration_labels=calibration_labels,
        keep_lossy_int8=keep_lossy_int8, int8_candidates=int8_candidates,
        measure_int8_speed=measure_int8_speed, fp16=fp16,
        validate=validate, atol=atol, overwrite=overwrite, cache_dir=cache_dir, threads=threads,
        local_files_only=local_files_only, hub_timeout=hub_timeout,
    )
    for message in restore_retired(options.output):  # before the request is checked against it
        (progress or _silent)(message)
    job = ExportJob(options, progress or _silent, calibration=check_request(options))
    started = time.perf_counter()
    job.stage("load", f"resolving {model}")
    with materialized(model, options.output.parent) as local:  # a .zip or package: unpacked until loaded
        job.source, job.resolved_revision = resolve_source(local, options)
        check_not_nested(job.source, options.output)
        load, steps = PIPELINES[source_kind(job.source)]
        load(job)
    with staging_dir(options.output) as job.staging:
        for step in steps:
            step(job)
        move_into_place(job.staging, options.output)
    job.say(f"done in {time.perf_counter() - started:.1f}s: {options.output}")
    return ExportResult(output=options.output, manifest=job.manifest, guard=job.guard)


def _silent(message: str) -> None:
    """The default progress callback: say nothing."""

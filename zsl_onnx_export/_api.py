"""export_bundle(): a transformers model -> a validated zsl-onnx bundle, as a pipeline of steps.

check the request -> resolve the source -> load -> export fp32 -> validate -> head-token
rewrite -> int8 through the accuracy guard -> optional fp16 -> write the manifest -> move into
place. Each step is a function of one :class:`ExportJob` (see ``_job``); a source kind is a
:class:`Pipeline` of steps, so another kind of model, or another int8 step, is one more entry here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._checks import check_not_nested
from ._embedding_export import EMBEDDING_STAGES, EMBEDDING_STEPS, load_sentence_transformer
from ._fp16 import convert_to_fp16
from ._fp32 import export_fp32, rewrite_head_token, validate_fp32
from ._int8 import quantize_int8
from ._job import NLI_STAGES, ExportJob, ExportOptions, Progress, Step
from ._manifest import write_manifest
from ._quiet import quiet_third_party
from ._source import check_request, load_nli, resolve_source
from ._st_source import materialized
from ._staging import move_into_place, restore_retired, staging_dir
from .int8.search import GuardReport

__all__ = ["PIPELINES", "ExportResult", "Pipeline", "export_bundle", "source_kind"]


@dataclass(frozen=True)
class Pipeline:
    """One source kind: the load step (before anything is written), the steps that build the
    bundle in its staging directory, in order, and the progress headings they print. Every
    pipeline has as many headings, since ``[1/N] load`` is printed before the kind is known."""

    load: Step
    steps: tuple[Step, ...]
    stages: tuple[str, ...]


PIPELINES: dict[str, Pipeline] = {
    "nli": Pipeline(load_nli, (export_fp32, validate_fp32, rewrite_head_token, quantize_int8, convert_to_fp16,
                               write_manifest), NLI_STAGES),
    "embedding": Pipeline(load_sentence_transformer, EMBEDDING_STEPS, EMBEDDING_STAGES),
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
    model: str | Path | ExportOptions,
    output: str | Path | None = None,
    *,
    progress: Progress | None = None,
    **settings: Any,
) -> ExportResult:
    """Export ``model`` (a Hub id or a local transformers directory) to a bundle in ``output``.

    ``settings`` are :class:`ExportOptions` fields by name (``fp16=True``, ``min_agreement=0.98``,
    ...), with its defaults; or pass one ready ``ExportOptions`` instead of ``model`` and
    ``output``. ``progress`` receives each line of the export log.

    A sentence-transformers model (a directory with modules.json, a .zip of one, or
    ``package:<module>``, an installed package that ships model.zip) gives an embedding bundle.

    Validation is on by default: fp32 logits must match PyTorch within ``atol`` on built-in
    pairs or the export fails. int8 is kept only if a candidate agrees with fp32 on at least
    ``min_agreement`` of held-out calibration pairs (``keep_lossy_int8`` keeps the best one
    anyway); fp16 (for GPUs) must agree on ``fp16_min_agreement`` of them. ``threads`` is for
    the speed measurements, which ``measure_int8_speed=False`` skips.
    ``local_files_only`` never contacts the Hub; ``hub_timeout`` bounds each Hub request (seconds).
    """
    options = _options(model, output, settings)
    say = progress or _silent
    for message in restore_retired(options.output):  # before the request is checked against it
        say(message)
    job = ExportJob(options, say, calibration=check_request(options))
    started = time.perf_counter()
    job.stage("load", f"resolving {options.model}")
    with quiet_third_party():
        with materialized(options.model, options.output.parent) as local:  # a .zip or package: unpacked until loaded
            job.source, job.resolved_revision = resolve_source(local, options)
            check_not_nested(job.source, options.output)
            pipeline = PIPELINES[source_kind(job.source)]
            job.stages = pipeline.stages
            pipeline.load(job)
        with staging_dir(options.output) as job.staging:
            for step in pipeline.steps:
                step(job)
            move_into_place(job.staging, options.output)
    job.say(f"done in {time.perf_counter() - started:.1f}s: {options.output}")
    return ExportResult(output=options.output, manifest=job.manifest, guard=job.guard)


def _options(model: str | Path | ExportOptions, output: str | Path | None, settings: dict[str, Any]) -> ExportOptions:
    """The one place keyword arguments become :class:`ExportOptions`."""
    if isinstance(model, ExportOptions):
        if output is not None or settings:
            raise TypeError("export_bundle() takes ExportOptions alone, or a model, an output and keyword settings")
        return model
    if output is None:
        raise TypeError("export_bundle() needs an output directory")
    return ExportOptions(model=model, output=Path(output), **settings)


def _silent(message: str) -> None:
    """The default progress callback: say nothing."""

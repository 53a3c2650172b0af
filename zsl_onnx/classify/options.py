"""The options of one zsl-classify run, spelled once.

``cli`` builds a :class:`ClassifyOptions` from the parsed command line and nothing below it sees
argparse: the plan, the run, the chunk classifiers and the settings recorded for ``--resume``
all read these fields. Values are as the user gave them; ``plan`` checks them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

from zsl_onnx.internals import DEFAULT_BATCH_SIZE

__all__ = ["ClassifyOptions"]


@dataclass(frozen=True)
class ClassifyOptions:
    """One field per command-line option; the comment names the flag where it differs."""

    model: str
    input: str  # a path, or "-" for stdin
    output: str  # -o; a path, or "-" for stdout
    labels: str | None = None  # comma-separated
    labels_file: str | None = None
    labels_field: str | None = None  # each record's own labels are in this field
    input_format: str | None = None
    output_format: str | None = None  # --format
    text_fields: tuple[str, ...] | None = None  # --text-field, repeated
    field_prefix: str = ""
    template: str | None = None
    multi_label: bool = False
    threshold: float | None = None
    only_above: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    flush_every: int = 256
    threads: int | None = None
    variant: str | None = None
    max_length: int | None = None
    long_text: str = "truncate"  # or "chunk"
    max_windows: int | None = None  # with --long-text chunk; None: the runtime's default
    truncation_field: str | None = None  # adds the count of tokens truncation dropped
    label_config: bool = False  # print the Label Studio labelling config and exit
    skip_invalid: bool = False
    max_rejects: tuple[int | None, float | None] | None = None  # (count, share), one of them None
    rejects: str | None = None
    resume: bool = False
    overwrite: bool = False
    offline: bool = False
    report: str | None = None
    quiet: bool = False
    ray: str | None = None  # None: no Ray; "local", "auto" or a cluster address
    workers: int | None = None

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> ClassifyOptions:
        """The options of a parsed command line (its dest names are the field names)."""
        values = {field.name: getattr(args, field.name) for field in fields(cls)}
        if values["text_fields"] is not None:
            values["text_fields"] = tuple(values["text_fields"])
        return cls(**values)

"""Records for annotation tools: Label Studio tasks and Argilla 2.x records, with their configs.

Label Studio (1.x) imports a ``.json`` file holding one array of tasks (it refuses JSON Lines),
so the output is framed as an array that grows a line per task: ``[`` first, ``,``-separated
tasks, and ``]`` only when the run completes (see :data:`LABEL_STUDIO_TAIL`). A checkpoint never
includes the closing bracket, so ``--resume`` cuts it off with whatever a crash left and appends
as before. The labelling config (``OUTPUT.label-config.xml``) and Argilla's dataset settings
(``OUTPUT.argilla-settings.json``) are written beside the output; see :mod:`.sidecars`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

from .records import Record

__all__ = [
    "LABEL_STUDIO_HEAD",
    "LABEL_STUDIO_TAIL",
    "LS_THRESHOLD",
    "argilla_record_v2",
    "argilla_settings",
    "chosen_labels",
    "label_config",
    "label_studio_task",
]

LABEL_STUDIO_HEAD = "[\n"
LABEL_STUDIO_TAIL = "\n]\n"
LS_THRESHOLD = 0.5  # --multi-label without --threshold: the labels a tool pre-selects
QUESTION = "label"  # Label Studio's Choices name, Argilla's question name
TEXT = "text"  # Label Studio's Text name, Argilla's field name


def chosen_labels(labels: Sequence[str], scores: Sequence[float], multi_label: bool,
                  threshold: float | None) -> list[str]:
    """The top label; with --multi-label every label scoring at least the threshold (0.5 by default)."""
    if not multi_label:
        return [labels[0]]
    bar = LS_THRESHOLD if threshold is None else threshold
    return [label for label, score in zip(labels, scores) if score >= bar]


def label_studio_task(record: Record, text_fields: Sequence[str], labels: Sequence[str], scores: Sequence[float],
                      model_version: str, multi_label: bool, threshold: float | None, prefix: str = "",
                      extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One task: the text and the record's other fields as ``data``, the model's choice as a prediction.

    Record fields live inside ``data``, so none can replace a task key (``id``, ``predictions``,
    ``annotations``, ``meta``); only ``data``'s own text key can clash, and that is refused upstream.
    """
    others = {key: value for key, value in record.fields.items() if key not in text_fields}
    choices = chosen_labels(labels, scores, multi_label, threshold)
    result = [{"from_name": QUESTION, "to_name": TEXT, "type": "choices", "value": {"choices": choices}}]
    return {
        "data": {prefix + TEXT: record.text, **others, **(extra or {})},
        "predictions": [{"model_version": model_version, "score": scores[0], "result": result if choices else []}],
    }


def label_config(labels: Sequence[str], multi_label: bool, prefix: str = "") -> str:
    """Label Studio's labelling config for these labels; every attribute value XML-escaped."""
    choices = "".join(f"    <Choice value={quoteattr(label)}/>\n" for label in labels)
    return (
        "<View>\n"
        f"  <Text name=\"{TEXT}\" value={quoteattr('$' + prefix + TEXT)}/>\n"
        f"  <Choices name=\"{QUESTION}\" toName=\"{TEXT}\" choice=\"{'multiple' if multi_label else 'single'}\" "
        "showInline=\"true\">\n"
        f"{choices}"
        "  </Choices>\n"
        "</View>\n"
    )


def argilla_record_v2(record: Record, text_fields: Sequence[str], labels: Sequence[str], scores: Sequence[float],
                      agent: str, multi_label: bool, threshold: float | None, prefix: str = "",
                      extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """An Argilla 2.x record in the shape of the SDK's ``Record.to_dict`` / ``Record.from_dict``.

    The id is the input line (unique in a file, unlike a record's own ``id`` field, which stays
    in the metadata with every other field). With --multi-label the suggestion holds every
    label at or above the threshold (0.5 by default) and their scores; none above: no suggestion.
    """
    metadata = {key: value for key, value in record.fields.items() if key not in text_fields}
    chosen = chosen_labels(labels, scores, multi_label, threshold)
    suggestions: dict[str, Any] = {}
    if chosen:
        score_of = dict(zip(labels, scores))
        value: Any = chosen if multi_label else chosen[0]
        score: Any = [score_of[label] for label in chosen] if multi_label else scores[0]
        suggestions[QUESTION] = {"value": value, "score": score, "agent": agent}
    return {
        "id": str(record.line),
        "fields": {TEXT: record.text},
        "metadata": {**metadata, prefix + "line": record.line, **(extra or {})},
        "suggestions": suggestions,
    }


def argilla_settings(labels: Sequence[str], multi_label: bool) -> dict[str, Any]:
    """Argilla 2.x dataset settings (``rg.Settings.from_json`` reads them): one text field, one label question.

    Metadata properties are not declared; ``allow_extra_metadata`` lets the records carry theirs.
    """
    kind = "multi_label_selection" if multi_label else "label_selection"
    question_settings: dict[str, Any] = {"type": kind, "options": [{"text": label, "value": label} for label in labels],
                                         "visible_options": None}
    if multi_label:
        question_settings["options_order"] = "natural"
    return {
        "guidelines": None,
        "questions": [{"name": QUESTION, "title": QUESTION, "description": None, "required": True,
                       "settings": question_settings, "type": kind}],
        "fields": [{"name": TEXT, "title": TEXT, "required": True, "description": None,
                    "settings": {"type": "text", "use_markdown": False}, "type": "text"}],
        "vectors": [],
        "metadata": [],
        "allow_extra_metadata": True,
        "distribution": {"strategy": "overlap", "min_submitted": 1},
        "mapping": None,
    }

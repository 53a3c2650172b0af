"""Request bodies: parsed from bytes by hand, so every malformed body is a 422 in one error form.

The pydantic models are strict (no "true" for true, no 1 for "1") and refuse unknown fields; the
routes publish their JSON schemas in the OpenAPI document.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import ServeConfig
from .errors import ApiError
from .runner import Work

__all__ = ["ClassifyRequest", "EmbedRequest", "openapi_body", "parse_body", "texts_of", "work_of"]

Model = TypeVar("Model", bound=BaseModel)
Texts = Union[str, list[str]]


class EmbedRequest(BaseModel):
    """``sequences``: one text or a list of texts."""

    model_config = ConfigDict(extra="forbid", strict=True)
    sequences: Texts = Field(description="A text, or a list of texts.")


class ClassifyRequest(EmbedRequest):
    """The pipeline's arguments: texts, candidate labels, template, multi-label."""

    candidate_labels: Texts = Field(description="A list of labels, or one comma-separated string.")
    hypothesis_template: Union[str, None] = Field(None, description="e.g. 'This example is {}.'; the bundle's default when null.")
    multi_label: bool = Field(False, description="Score each label on its own instead of across labels.")


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """The ``openapi_extra`` that documents a body the route reads by hand."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def parse_body(raw: bytes, model: type[Model], config: ServeConfig) -> Model:
    """The body as ``model``, within the per-request limits, or an ApiError (422)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, nesting beyond the parser
        raise ApiError(422, "invalid_json", f"The body is not valid JSON: {_short(exc)}") from None
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_input", _validation_message(exc)) from None
    _check_limits(body, config)
    return body


def texts_of(body: EmbedRequest) -> list[str]:
    return [body.sequences] if isinstance(body.sequences, str) else list(body.sequences)


def work_of(endpoint: str, body: EmbedRequest) -> Work:
    """The request as the model runner takes it (labels as given: a string or a tuple)."""
    if not isinstance(body, ClassifyRequest):
        return Work(endpoint, texts_of(body))
    labels = body.candidate_labels if isinstance(body.candidate_labels, str) else tuple(body.candidate_labels)
    return Work(endpoint, texts_of(body), labels, body.hypothesis_template, body.multi_label)


def _check_limits(body: BaseModel, config: ServeConfig) -> None:
    if isinstance(body, EmbedRequest) and len(texts_of(body)) > config.max_texts:
        raise ApiError(422, "too_many_texts",
                       f"{len(texts_of(body))} texts in one request; the limit is {config.max_texts} (--max-texts).")
    if isinstance(body, ClassifyRequest):
        labels = body.candidate_labels
        count = labels.count(",") + 1 if isinstance(labels, str) else len(labels)
        if count > config.max_labels:
            raise ApiError(422, "too_many_labels",
                           f"{count} candidate labels in one request; the limit is {config.max_labels} (--max-labels).")


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:3]:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."

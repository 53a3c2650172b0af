"""Parquet input for ``zsl-classify``: rows stream in record batches, numbered from 1.

pyarrow is optional (the ``[ray]`` extra brings it). Values JSON cannot hold are written as
text: dates and times in ISO 8601, decimals as their digits, bytes as UTF-8 when they are.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import importlib
import json
import math
from collections.abc import Iterator, Sequence
from typing import IO, Any

from zsl_onnx import InvalidInputError

from .records import Invalid, Record, make_record

__all__ = ["ROWS_PER_BATCH", "read_parquet"]

ROWS_PER_BATCH = 1024


def read_parquet(stream: IO[bytes], text_fields: Sequence[str], separator: str) -> Iterator[Record | Invalid]:
    """Yield a Record or an Invalid per row; the row number (from 1) stands in for the line."""
    parquet = _pyarrow_parquet()
    if not stream.seekable():
        raise InvalidInputError("Parquet input must be a file (its index is at the end), not stdin or a pipe.")
    try:
        source = parquet.ParquetFile(stream)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InvalidInputError(f"Cannot read the input as Parquet: {exc}") from exc
    _check_columns(source.schema_arrow.names)
    number = 0
    for batch in source.iter_batches(batch_size=ROWS_PER_BATCH):
        for row in batch.to_pylist():
            number += 1
            fields = {str(key): _jsonable(value) for key, value in row.items()}
            raw = json.dumps(fields, ensure_ascii=False)
            bad = next((name for name, value in fields.items() if not _finite(value)), None)
            if bad is not None:  # as in JSONL input: JSON output cannot hold NaN or infinity
                yield Invalid(number, f"field {bad!r} holds NaN or infinity, which JSON cannot hold", raw)
                continue
            yield make_record(number, fields, text_fields, separator, raw)


def _check_columns(names: list[str]) -> None:
    """Two columns of one name would become one field, the second silently replacing the first."""
    seen: dict[str, int] = {}
    for number, name in enumerate(map(str, names), start=1):
        if name in seen:
            raise InvalidInputError(
                f"The Parquet file names the column {name!r} twice (columns {seen[name]} and {number}); "
                "rename one so that no column is lost."
            )
        seen[name] = number


def _finite(value: Any) -> bool:
    """No float anywhere in ``value`` is NaN or infinite (iteratively: nesting depth is the file's)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return False
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _pyarrow_parquet() -> Any:
    try:
        return importlib.import_module("pyarrow.parquet")
    except ImportError as exc:
        raise InvalidInputError(
            "Parquet input needs pyarrow: pip install pyarrow (or pip install 'zsl-onnx[ray]')."
        ) from exc


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (datetime.timedelta, decimal.Decimal)):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode("ascii")
    return value

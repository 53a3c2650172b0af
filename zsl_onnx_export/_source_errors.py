"""The one place where failures of a model source become :class:`SourceError`.

Reading a source goes through zipfile, json, transformers, tokenizers and safetensors, each
with exceptions of its own (``zlib.error``, ``NotImplementedError``, tokenizers' bare
``Exception``, ``SafetensorError``, ...). The exporter's source steps run those calls inside
:func:`source_errors`, which turns any of them into one line that names the file and the fix.

Third-party messages are not repeated: they may quote the file (a JSON parser's excerpt, an
unknown enum value, a config field), and a source may hold what its owner never meant to print.
What is kept is the exception's type and, where the message gives one, the line and column.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zsl_onnx import ZslOnnxError

from ._errors import ExportError, SourceError

__all__ = ["MAX_SOURCE_JSON_BYTES", "describe", "read_source_json", "source_errors"]

MAX_SOURCE_JSON_BYTES = 64 << 20  # module configs are tiny; a tokenizer.json reaches ~20 MB
_LINE_COLUMN = re.compile(r"line (\d+),? column (\d+)")


@contextmanager
def source_errors(
    path: Path | str, problem: str, fix: str, keep: tuple[type[BaseException], ...] = ()
) -> Iterator[None]:
    """Run a step that reads ``path``; whatever it raises becomes a SourceError
    "``path``: ``problem`` (what went wrong). ``fix``", with the original chained as its cause.

    Our own ExportErrors pass unchanged (they are already worded for the user), and so do the
    documented errors named in ``keep``. Any other runtime ZslOnnxError is re-worded: its advice
    is for bundles, not for export sources. MemoryError is not a property of the file, so it
    passes as well.
    """
    try:
        yield
    except (ExportError, MemoryError, *keep):
        raise
    except Exception as exc:  # every other failure of a third-party reader, by design
        detail = describe(exc)
        raise SourceError(f"{path}: {problem}{f' ({detail})' if detail else ''}. {fix}") from exc


def describe(exc: BaseException) -> str:
    """What went wrong, without the file's contents: a kind of failure and at most a position."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text: byte {exc.start}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, OSError) and exc.strerror:
        name = Path(str(exc.filename)).name if exc.filename else ""
        shown = f" ({name if len(name) <= 60 else name[:57] + '...'})" if name else ""
        return f"{type(exc).__name__}: {exc.strerror}{shown}"
    if isinstance(exc, ZslOnnxError):
        return ""  # the runtime's own check: the problem given to source_errors says it
    if isinstance(exc, zipfile.BadZipFile):  # zipfile's wording names entries, never their data
        return f"{str(exc).splitlines()[0][:120]}" if str(exc) else "BadZipFile"
    position = _LINE_COLUMN.search(str(exc))
    where = f" at line {position[1]} column {position[2]}" if position else ""
    return f"{_type_name(exc)}{where}"


def _type_name(exc: BaseException) -> str:
    """``ValueError``, ``zlib.error``, ``safetensors.SafetensorError``: the type, and its package
    where the bare name says little."""
    module = type(exc).__module__.split(".")[0]
    return type(exc).__name__ if module == "builtins" else f"{module}.{type(exc).__name__}"


def read_source_json(path: Path, fix: str, kind: type = dict) -> Any:
    """A JSON document of type ``kind`` (an object unless asked otherwise) from a regular file
    of bounded size, or a SourceError naming the file, the line and column, and ``fix``."""
    with source_errors(path, "cannot be read", fix):
        if not path.is_file():
            raise SourceError(f"{path} is missing or not a regular file. {fix}")
        if path.stat().st_size > MAX_SOURCE_JSON_BYTES:
            raise SourceError(f"{path} is larger than {MAX_SOURCE_JSON_BYTES >> 20} MiB; refused. {fix}")
        data = json.loads(path.read_bytes().decode("utf-8"))
    if not isinstance(data, kind):
        noun = "an object" if kind is dict else "a list" if kind is list else kind.__name__
        raise SourceError(f"{path} should hold {noun} in JSON, not {_json_type(data)}. {fix}")
    return data


def _json_type(data: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(data), "a number")

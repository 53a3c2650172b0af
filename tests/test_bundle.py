"""Loading: our bundles, transformers.js/onnx-community and optimum layouts, the Hub path, damage."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from zsl_onnx import (
    BundleError,
    ChecksumMismatchError,
    InvalidInputError,
    NoEntailmentLabelError,
    ProviderFallbackWarning,
    ProviderUnavailableError,
    ZeroShotClassifier,
)
from zsl_onnx._bundle import pick_variant

TEXTS = ["A man is playing a guitar.", "Stocks fell sharply."]
LABELS = ["music", "economy", "sports"]


@pytest.fixture()
def bundle_copy(bert_bundle, tmp_path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(bert_bundle, target)
    return target


def test_own_bundle_defaults_to_int8_on_cpu(bert_bundle):
    clf = ZeroShotClassifier.from_pretrained(bert_bundle)
    assert clf.variant == "int8"
    assert clf.fidelity["validated"] is True and clf.fidelity["guard_passed"] is True  # by the int8 guard
    assert 0 < clf.fidelity["top1_agreement"] <= 1 and clf.fidelity["calibration_agreement"] >= 0.99
    assert ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32").fidelity["validated"] is True


def test_onnx_community_layout_without_manifest(bert_bundle, bundle_copy):
    (bundle_copy / "zsl_onnx.json").unlink()
    clf = ZeroShotClassifier.from_pretrained(bundle_copy)
    ours = ZeroShotClassifier.from_pretrained(bert_bundle)
    assert clf.variant == "int8" and clf.fidelity == {}
    np.testing.assert_allclose(clf.scores(TEXTS, LABELS), ours.scores(TEXTS, LABELS), atol=1e-6)


def test_optimum_layout_with_model_onnx_at_the_root(bert_bundle, bundle_copy):
    (bundle_copy / "zsl_onnx.json").unlink()
    shutil.move(bundle_copy / "onnx" / "model.onnx", bundle_copy / "model.onnx")
    shutil.rmtree(bundle_copy / "onnx")
    clf = ZeroShotClassifier.from_pretrained(bundle_copy)
    assert clf.variant == "fp32"
    ours = ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32")
    np.testing.assert_allclose(clf.scores(TEXTS, LABELS), ours.scores(TEXTS, LABELS), atol=1e-6)


def test_layout_without_manifest_still_needs_an_entailment_label(bundle_copy):
    (bundle_copy / "zsl_onnx.json").unlink()
    config = json.loads((bundle_copy / "config.json").read_text())
    config["id2label"] = {"0": "positive", "1": "negative", "2": "neutral"}
    config["label2id"] = {"positive": 0, "negative": 1, "neutral": 2}
    (bundle_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(NoEntailmentLabelError, match="positive"):
        ZeroShotClassifier.from_pretrained(bundle_copy)


def test_flipped_byte_is_caught_by_sha256(bundle_copy):
    path = bundle_copy / "onnx" / "model_quantized.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        ZeroShotClassifier.from_pretrained(bundle_copy)


def test_truncated_file_is_caught_by_size(bundle_copy):
    path = bundle_copy / "onnx" / "model.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ChecksumMismatchError, match="truncated"):
        ZeroShotClassifier.from_pretrained(bundle_copy, variant="fp32")


def test_garbage_onnx_without_verification_is_a_bundle_error(bundle_copy):
    (bundle_copy / "onnx" / "model.onnx").write_bytes(b"not a protobuf" * 10)
    with pytest.raises(BundleError, match="ONNX Runtime cannot load"):
        ZeroShotClassifier.from_pretrained(bundle_copy, variant="fp32", verify=False)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "tokenizer.json").unlink(), "no tokenizer.json"),
        (lambda d: (d / "config.json").unlink(), "config.json is missing"),
        (lambda d: (d / "zsl_onnx.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "onnx" / "model_quantized.onnx").unlink(), "model file .* is missing"),
        (lambda d: shutil.rmtree(d / "onnx"), "model file .* is missing"),
    ],
)
def test_damaged_bundles_name_the_problem(bundle_copy, damage, message):
    damage(bundle_copy)
    with pytest.raises(BundleError, match=message):
        ZeroShotClassifier.from_pretrained(bundle_copy)


def test_directory_without_any_model(tmp_path, bert_bundle):
    shutil.copy(bert_bundle / "config.json", tmp_path)
    shutil.copy(bert_bundle / "tokenizer.json", tmp_path)
    with pytest.raises(BundleError, match="holds no ONNX model"):
        ZeroShotClassifier.from_pretrained(tmp_path)


def test_missing_local_path_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(BundleError, match="is not a model directory"):
        ZeroShotClassifier.from_pretrained(tmp_path / "nope")


def test_unknown_and_absent_variants(bert_bundle, bundle_copy):
    with pytest.raises(InvalidInputError, match="variant must be one of"):
        ZeroShotClassifier.from_pretrained(bert_bundle, variant="int4")
    with pytest.raises(BundleError, match=r"has no fp16 model; it has \['fp32', 'int8'\]"):
        ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp16")


def test_unavailable_provider_lists_the_available_ones(bert_bundle):
    with pytest.raises(ProviderUnavailableError, match="CPUExecutionProvider"):
        ZeroShotClassifier.from_pretrained(bert_bundle, providers=["CUDAExecutionProvider"])


def test_silent_fallback_to_cpu_warns(bert_bundle, monkeypatch):
    import onnxruntime as ort

    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    with pytest.warns(ProviderFallbackWarning, match="CUDAExecutionProvider"):
        clf = ZeroShotClassifier.from_pretrained(
            bert_bundle, providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
        )
    assert clf.variant == "fp32"  # a GPU request never picks int8
    assert clf.providers == ["CPUExecutionProvider"]


def test_threads_and_session_options_are_exclusive(bert_bundle):
    import onnxruntime as ort

    with pytest.raises(InvalidInputError, match="not both"):
        ZeroShotClassifier.from_pretrained(bert_bundle, threads=1, session_options=ort.SessionOptions())
    with pytest.raises(InvalidInputError, match="an integer from 1 to"):
        ZeroShotClassifier.from_pretrained(bert_bundle, threads=0)
    assert ZeroShotClassifier.from_pretrained(bert_bundle, threads=1)("hi", ["a", "b"])["labels"]


def test_our_sessions_balance_parallel_loops_and_yours_are_left_as_given(bert_bundle):
    """Sessions we configure hand out parallel loops in shrinking blocks (same numbers); a
    SessionOptions the caller passes is used as it is."""
    import onnxruntime as ort

    from zsl_onnx._session import DYNAMIC_BLOCK_BASE, create_session

    model = bert_bundle / "onnx" / "model.onnx"
    ours = create_session(model, threads=2).get_session_options()
    assert ours.get_session_config_entry(DYNAMIC_BLOCK_BASE) == "4" and ours.intra_op_num_threads == 2
    given = ort.SessionOptions()
    theirs = create_session(model, session_options=given).get_session_options()
    for options in (theirs, given):  # not added to the session, nor to the caller's object
        with pytest.raises(RuntimeError, match="does not have configuration"):
            options.get_session_config_entry(DYNAMIC_BLOCK_BASE)


def test_max_length_can_be_lowered_not_raised(bert_bundle):
    clf = ZeroShotClassifier.from_pretrained(bert_bundle, max_length=32)
    assert clf.max_length == 32
    with pytest.raises(InvalidInputError, match="max_length"):
        ZeroShotClassifier.from_pretrained(bert_bundle, max_length=100_000)


COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_file(cache: Path, repo_id: str, remote: Path, relative: str) -> Path:
    """Put one file into a Hugging Face cache the way huggingface_hub does: a blob named by its
    hash, and a relative symlink to it from snapshots/<commit>/<relative>."""
    import hashlib

    repo = cache / ("models--" + repo_id.replace("/", "--"))
    data = (remote / relative).read_bytes()
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    link = repo / "snapshots" / COMMIT / relative
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(Path(*[".."] * (len(Path(relative).parts) + 1), "blobs", blob.name))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return link


class FakeHub:
    """Stands in for the Hub API (model_info) and hf_hub_download over a local 'remote' repo,
    filling a real cache layout; records each file fetched and the timeouts passed."""

    def __init__(self, remote: Path, cache: Path):
        self.remote, self.cache, self.fetched, self.timeouts = remote, cache, [], []

    def install(self, monkeypatch):
        import huggingface_hub
        from types import SimpleNamespace

        files = [p.relative_to(self.remote).as_posix() for p in self.remote.rglob("*") if p.is_file()]

        def model_info(api, repo_id, *, revision=None, timeout=None, **kwargs):
            self.timeouts.append(("model_info", timeout))
            return SimpleNamespace(sha=COMMIT, siblings=[SimpleNamespace(rfilename=f) for f in files])

        def hf_hub_download(repo_id, filename, *, revision, cache_dir, etag_timeout):
            assert revision == COMMIT  # pinned to the commit model_info returned
            self.fetched.append(filename)
            self.timeouts.append(("download", etag_timeout))
            return str(hub_file(self.cache, repo_id, self.remote, filename))

        monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
        monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
        return self


def test_hub_download_fetches_metadata_then_only_the_chosen_variant(bert_bundle, tmp_path, monkeypatch):
    hub = FakeHub(bert_bundle, tmp_path / "cache").install(monkeypatch)
    clf = ZeroShotClassifier.from_pretrained("org/tiny-bert-zeroshot", hub_timeout=3.5)
    assert clf.variant == "int8"
    assert hub.fetched[:4] == ["zsl_onnx.json", "config.json", "tokenizer.json", "tokenizer_config.json"]
    assert hub.fetched[-1] == "onnx/model_quantized.onnx" and "onnx/model.onnx" not in hub.fetched
    assert {timeout for _, timeout in hub.timeouts} == {3.5}  # every call bounded
    snapshot = tmp_path / "cache" / "models--org--tiny-bert-zeroshot" / "snapshots" / COMMIT
    assert (snapshot / "onnx" / "model_quantized.onnx").is_symlink()  # read through the cache's links


def test_hub_calls_have_a_default_timeout(bert_bundle, tmp_path, monkeypatch):
    from zsl_onnx._hub import DEFAULT_HUB_TIMEOUT

    hub = FakeHub(bert_bundle, tmp_path / "cache").install(monkeypatch)
    ZeroShotClassifier.from_pretrained("org/tiny-bert-zeroshot", variant="fp32")
    assert {timeout for _, timeout in hub.timeouts} == {DEFAULT_HUB_TIMEOUT} and DEFAULT_HUB_TIMEOUT > 0


def test_hub_failure_becomes_a_bundle_error(monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(BundleError, match="pass a local directory"):
        ZeroShotClassifier.from_pretrained("org/model", local_files_only=True)


def test_hub_repo_without_manifest_is_listed_and_fetches_one_file(bert_bundle, tmp_path, monkeypatch):
    remote = tmp_path / "remote"
    shutil.copytree(bert_bundle, remote)
    (remote / "zsl_onnx.json").unlink()  # an onnx-community style repo
    hub = FakeHub(remote, tmp_path / "cache").install(monkeypatch)
    clf = ZeroShotClassifier.from_pretrained("onnx-community/tiny-bert", variant="fp32")
    assert clf.variant == "fp32"
    assert hub.fetched[-1] == "onnx/model.onnx" and "onnx/model_quantized.onnx" not in hub.fetched


@pytest.mark.parametrize(
    ("available", "on_gpu", "expected"),
    [
        ({"fp32", "int8", "fp16"}, False, "int8"),
        ({"fp32", "fp16"}, False, "fp32"),  # fp16 is for GPUs: slow on CPU, never the CPU default
        ({"fp32", "int8", "fp16"}, True, "fp16"),
        ({"fp32", "int8"}, True, "fp32"),  # int8 kernels are CPU-only: never picked for a GPU
    ],
)
def test_default_variant_by_device(available, on_gpu, expected):
    assert pick_variant(available, None, on_gpu=on_gpu, where="bundle") == expected


def test_gpu_with_only_int8_is_refused_with_the_fix():
    with pytest.raises(BundleError, match=r"no model usable on GPU: it has \['int8'\]\. Pass variant="):
        pick_variant({"int8"}, None, on_gpu=True, where="bundle")

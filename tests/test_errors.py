"""Third-party errors become ours in one place, with a short cause and the fix; public classes
report the package as their module; a missing local path is named as such."""

from __future__ import annotations

import shutil

import pytest

import zsl_onnx
from zsl_onnx import BundleError, InvalidInputError, ZeroShotClassifier, ZslOnnxError
from zsl_onnx._exceptions import CAUSE_CHARS, mapped_errors, short_cause


def test_mapped_errors_wraps_third_party_errors_with_a_short_cause():
    long_message = "first line " + "x" * 1000 + "\nsecond line with more"
    with pytest.raises(BundleError) as caught:
        with mapped_errors("Cannot read thing.bin", "Re-export it."):
            raise RuntimeError(long_message)
    text = str(caught.value)
    assert text.startswith("Cannot read thing.bin (RuntimeError: first line xxx")
    assert text.endswith("...). Re-export it.") and "second line" not in text
    assert len(short_cause(RuntimeError(long_message))) == CAUSE_CHARS
    assert isinstance(caught.value.__cause__, RuntimeError)


@pytest.mark.parametrize("error", [InvalidInputError("ours"), MemoryError(), KeyboardInterrupt()])
def test_mapped_errors_lets_ours_and_fatal_ones_through(error):
    with pytest.raises(type(error)):
        with mapped_errors("problem", "fix", InvalidInputError):
            raise error


def test_mapped_errors_takes_the_error_class():
    with pytest.raises(InvalidInputError, match=r"^bad \(ValueError: v\)\. fix$"):
        with mapped_errors("bad", "fix", InvalidInputError):
            raise ValueError("v")


def test_public_classes_report_the_package_as_their_module():
    for name in zsl_onnx.__all__:
        value = getattr(zsl_onnx, name)
        if isinstance(value, type):
            assert value.__module__ == "zsl_onnx", name
    assert repr(BundleError) == "<class 'zsl_onnx.BundleError'>"


@pytest.mark.parametrize("broken", ["tokenizer.json", "onnx/model.onnx"])
def test_a_corrupt_bundle_file_is_a_bundle_error_naming_it(bert_bundle, tmp_path, broken):
    bundle = tmp_path / "bundle"
    shutil.copytree(bert_bundle, bundle)
    (bundle / broken).write_bytes(b"SECRET-CONTENT \x00\x01 not what it should be" * 10)
    with pytest.raises(BundleError) as caught:
        ZeroShotClassifier.from_pretrained(bundle, variant="fp32", verify=False)
    message = str(caught.value)
    assert broken.rsplit("/", 1)[-1] in message and "Re-download or re-export the bundle." in message
    assert "SECRET-CONTENT" not in message and "\n" not in message


def test_a_missing_path_beside_an_existing_directory_never_goes_to_the_hub(tmp_path, monkeypatch):
    (tmp_path / "bundles").mkdir()
    monkeypatch.chdir(tmp_path)
    for missing in ("bundles/nope", "bundles/nope/", "my bundle", "./nope", "a/b/c"):
        with pytest.raises(BundleError, match=r"is not a model directory: it does not exist\."):
            ZeroShotClassifier.from_pretrained(missing)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(BundleError, match="is a file, not a directory"):
        ZeroShotClassifier.from_pretrained("file.txt")


def test_a_name_that_may_be_a_repo_id_says_it_is_no_local_path_either(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ZslOnnxError, match=r"'org-nope/model' is not a local directory \(no such path here\), "
                                           r"and it is not in the Hugging Face Hub cache"):
        ZeroShotClassifier.from_pretrained("org-nope/model", local_files_only=True, cache_dir=tmp_path / "cache")

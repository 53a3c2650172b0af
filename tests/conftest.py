"""Session-scoped model fixtures.

Runtime tests load ``bert_bundle``: the committed tiny bundle (data/tiny-bert, fp32 + int8,
rebuilt by make_tiny_bundle.py), so they need neither torch nor an export. Export tests
(marker ``export``) build tiny random-weight models of each family in code (tiny_models.py)
and export each (family, labels) once per session, int8 only when a test asks for it, with
a 119-pair calibration set instead of the built-in 832, and without the int8 speed measurement.
So is the trained fixture in ../shared, except for the opt-in ``fidelity`` test, which checks
the guard's accuracy targets on the bundle exactly as users get it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tiny_models import NLI3

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURE_MODEL = SHARED / "fixtures" / "minilm-l6-sick-nli"
TINY_BUNDLE = Path(__file__).resolve().parent / "data" / "tiny-bert"


@dataclass(frozen=True)
class TinyModel:
    source: Path  # transformers directory (weights + tokenizer)
    bundle: Path  # zsl-export output


TinyFactory = Callable[..., TinyModel]


@pytest.fixture(scope="session")
def bert_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed tiny 3-class BERT bundle (fp32 + guarded int8), copied so no test can change it."""
    target = tmp_path_factory.mktemp("tiny-bert") / "bundle"
    shutil.copytree(TINY_BUNDLE, target)
    return target


@pytest.fixture(scope="session")
def small_calibration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """119 pairs of the built-in calibration set, all languages, as a --calibration-file."""
    pytest.importorskip("torch")
    from tiny_models import write_calibration

    return write_calibration(tmp_path_factory.mktemp("calibration") / "pairs.jsonl")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, small_calibration: Path) -> TinyFactory:
    """tiny_models(family, labels, int8=True) -> a built and exported model, cached for the session.

    ``int8=False`` exports fp32 only (seconds faster), and reuses an int8 export if one exists.
    """
    pytest.importorskip("torch")
    pytest.importorskip("optimum.exporters.onnx")
    from tiny_models import build_model

    from zsl_onnx_export import export_bundle

    sources: dict[tuple[str, tuple[str, ...]], Path] = {}
    bundles: dict[tuple[str, tuple[str, ...], bool], TinyModel] = {}

    def get(family: str, labels: Sequence[str] = NLI3, *, int8: bool = True) -> TinyModel:
        key = (family, tuple(labels))
        if not int8 and (*key, True) in bundles:
            return bundles[(*key, True)]
        if (*key, int8) not in bundles:
            root = tmp_path_factory.mktemp(f"{family}-{'-'.join(labels)}")
            if key not in sources:
                sources[key] = build_model(family, root / "source", labels=labels)
            bundle = root / ("bundle" if int8 else "bundle-fp32")
            export_bundle(sources[key], bundle, quantize_int8=int8, calibration_file=small_calibration, threads=1,
                          measure_int8_speed=False)  # no timing that no test asserts
            bundles[(*key, int8)] = TinyModel(sources[key], bundle)
        return bundles[(*key, int8)]

    return get


@pytest.fixture(scope="session")
def fixture_bundle(tmp_path_factory: pytest.TempPathFactory, small_calibration: Path) -> Path:
    """The trained SICK cross-encoder from ../shared, exported once for the session: fp32 and an
    int8 guarded on the 119-pair calibration slice, without the speed measurement."""
    return _export_fixture(tmp_path_factory, "fixture", calibration_file=small_calibration, measure_int8_speed=False)


@pytest.fixture(scope="session")
def fixture_int8_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained fixture exported as users get it: the guard on the full built-in calibration set."""
    return _export_fixture(tmp_path_factory, "fixture-full")


def _export_fixture(tmp_path_factory: pytest.TempPathFactory, name: str, **options: Any) -> Path:
    if not FIXTURE_MODEL.is_dir():
        pytest.skip(f"trained fixture not found at {FIXTURE_MODEL} (../shared is absent)")
    pytest.importorskip("torch")
    from zsl_onnx_export import export_bundle

    output = tmp_path_factory.mktemp(name) / "bundle"
    export_bundle(FIXTURE_MODEL, output, **options)
    return output

"""Session-scoped model fixtures: tiny random-weight models built in code, exported once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from tiny_models import NLI3

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURE_MODEL = SHARED / "fixtures" / "minilm-l6-sick-nli"


@dataclass(frozen=True)
class TinyModel:
    source: Path  # transformers directory (weights + tokenizer)
    bundle: Path  # zsl-export output


TinyFactory = Callable[..., TinyModel]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyFactory:
    """tiny_models(family, labels) -> a built and exported model, cached for the session."""
    pytest.importorskip("torch")
    pytest.importorskip("optimum.exporters.onnx")
    from zsl_onnx_export import export_bundle
    from tiny_models import build_model

    cache: dict[tuple[str, tuple[str, ...]], TinyModel] = {}

    def get(family: str, labels: Sequence[str] = NLI3) -> TinyModel:
        key = (family, tuple(labels))
        if key not in cache:
            root = tmp_path_factory.mktemp(f"{family}-{'-'.join(labels)}")
            source = build_model(family, root / "source", labels=labels)
            export_bundle(source, root / "bundle")
            cache[key] = TinyModel(source, root / "bundle")
        return cache[key]

    return get


@pytest.fixture(scope="session")
def bert_bundle(tiny_models: TinyFactory) -> Path:
    """A small 3-class BERT bundle (fp32 + int8) for runtime behaviour tests."""
    return tiny_models("bert").bundle


@pytest.fixture(scope="session")
def fixture_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained SICK cross-encoder from ../shared, exported once for the session."""
    if not FIXTURE_MODEL.is_dir():
        pytest.skip(f"trained fixture not found at {FIXTURE_MODEL} (../shared is absent)")
    pytest.importorskip("torch")
    from zsl_onnx_export import export_bundle

    output = tmp_path_factory.mktemp("fixture") / "bundle"
    export_bundle(FIXTURE_MODEL, output)
    return output

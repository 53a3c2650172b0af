"""Graph file helpers: external-data files beside big graphs, sizes, and fp16 conversion."""

from __future__ import annotations

from pathlib import Path


def external_files(model_path: Path) -> list[Path]:
    """model.onnx_data / model.onnx.data: weights stored beside graphs over 2 GB."""
    return sorted(p for p in model_path.parent.glob(model_path.name + "?*") if p.is_file())


def size_with_data(model_path: Path) -> int:
    return model_path.stat().st_size + sum(p.stat().st_size for p in external_files(model_path))


def convert_fp16(source: Path, target: Path, *, external_data: bool) -> None:
    """fp16 weights and activations, fp32 inputs and outputs (callers keep feeding int64 ids)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source))
    converted = convert_float_to_float16(model, keep_io_types=True)
    onnx.save(converted, str(target), save_as_external_data=external_data, location=target.name + "_data")

"""Graph rewrites made at export time: transformer fusions before int8, and fp16 conversion.

ONNX Runtime fuses LayerNorm and GELU when it loads any graph, but not multi-head attention
in these exports; the offline optimizer does, and quantizing the fused Attention node
(QAttention) is what makes int8 clearly faster than fp32. The optimizer is applied only to
BERT-style encoders: on DeBERTa it did not finish in 16 minutes and on BART its fused
embedding broke int8 (onnxruntime 1.32), so those quantize the graph as exported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

def external_files(model_path: Path) -> list[Path]:
    """model.onnx_data / model.onnx.data: weights stored beside graphs over 2 GB."""
    return sorted(p for p in model_path.parent.glob(model_path.name + "?*") if p.is_file())


def size_with_data(model_path: Path) -> int:
    return model_path.stat().st_size + sum(p.stat().st_size for p in external_files(model_path))


# config.json model_type -> onnxruntime.transformers optimizer model_type
_OPTIMIZER_TYPES = {"bert": "bert", "electra": "bert", "roberta": "bert", "xlm-roberta": "bert", "camembert": "bert"}


def optimizer_type(config: dict[str, Any]) -> str | None:
    return _OPTIMIZER_TYPES.get(str(config.get("model_type", "")))


def optimize_for_int8(source: Path, target: Path, config: dict[str, Any], *, external_data: bool) -> dict[str, int]:
    """Fuse attention/GELU/LayerNorm into ``target``; returns the fused-op counts.

    The embedding fusion stays off: it would hide the embedding Gather nodes, and those are
    what int8 shrinks the most.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    model_type = optimizer_type(config)
    if model_type is None:
        raise ValueError(f"no optimizer for model_type {config.get('model_type')!r}")
    options = FusionOptions(model_type)
    options.enable_embed_layer_norm = False
    optimized = optimize_model(
        str(source),
        model_type=model_type,
        num_heads=int(config.get("num_attention_heads", 0)),
        hidden_size=int(config.get("hidden_size", 0)),
        optimization_options=options,
        opt_level=0,  # offline fusions only; ORT applies its own when the session loads
    )
    optimized.save_model_to_file(str(target), use_external_data_format=external_data)
    return {op: count for op, count in optimized.get_fused_operator_statistics().items() if count}


def convert_fp16(source: Path, target: Path, *, external_data: bool) -> None:
    """fp16 weights and activations, fp32 inputs and outputs (callers keep feeding int64 ids)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source))
    converted = convert_float_to_float16(model, keep_io_types=True)
    onnx.save(converted, str(target), save_as_external_data=external_data, location=target.name + "_data")

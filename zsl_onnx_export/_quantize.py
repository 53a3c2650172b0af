"""Dynamic int8 quantization settings and the call into onnxruntime's quantizer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

# Ops with weights that quantize_dynamic can turn into int8: MatMul (dense layers), Attention
# (the fused QKV projection from the graph optimizer) and Gather (embedding tables, which are
# most of the file size of small models).
ALL_OPS = ("MatMul", "Attention", "Gather")


@dataclass(frozen=True)
class QuantConfig:
    """Settings passed to onnxruntime's quantize_dynamic, under a short name for tables."""

    name: str
    weight_type: str = "QInt8"
    per_channel: bool = True
    reduce_range: bool = True
    op_types: tuple[str, ...] = ALL_OPS
    nodes_to_exclude: tuple[str, ...] = field(default=())

    def excluding(self, nodes: Sequence[str]) -> QuantConfig:
        return replace(self, name=f"{self.name} -{len(nodes)} fp32", nodes_to_exclude=tuple(nodes))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["op_types"] = list(self.op_types)
        data["nodes_to_exclude"] = list(self.nodes_to_exclude)
        return data


# Tried first, in this order, before any node is kept in fp32. Signed 7-bit weights
# (reduce_range) run the fast u8*s8 kernel without the saturation that full-range signed
# weights hit in that kernel on AVX2 CPUs without VNNI; unsigned 8-bit weights use the slower
# u8*u8 kernel but keep one more bit, which some models need.
BASE_CANDIDATES: tuple[QuantConfig, ...] = (
    QuantConfig("s8 per-channel 7-bit"),
    QuantConfig("u8 per-channel", weight_type="QUInt8", reduce_range=False),
)


def quantize(
    source: Path,
    target: Path,
    config: QuantConfig,
    *,
    external_data: bool,
    only_nodes: Sequence[str] | None = None,
) -> None:
    """Write ``source`` quantized with ``config`` to ``target`` (``only_nodes``: just those)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    root.addFilter(_drop_preprocess_advice)  # once per candidate it would flood the export log
    try:
        quantize_dynamic(
            model_input=source,
            model_output=target,
            weight_type=QuantType[config.weight_type],
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            op_types_to_quantize=list(config.op_types),
            nodes_to_quantize=list(only_nodes) if only_nodes is not None else None,
            nodes_to_exclude=list(config.nodes_to_exclude),
            use_external_data_format=external_data,
            # Fused contrib ops (Attention, SkipLayerNormalization) have no ONNX shape
            # inference; without a default type the quantizer cannot tell they output float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.removeFilter(_drop_preprocess_advice)


def _drop_preprocess_advice(record: logging.LogRecord) -> bool:
    """onnxruntime logs 'Please consider to run pre-processing' on the root logger every call;
    its pre-processing fails on these exported graphs, so the advice is noise here."""
    return "consider to run pre-processing" not in record.getMessage()


def quantizable_nodes(model_path: Path, op_types: Sequence[str]) -> list[str]:
    """Names of the nodes quantize_dynamic would turn to int8: listed ops with a weight input."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type in op_types and node.name and any(name in weights for name in node.input)
    ]

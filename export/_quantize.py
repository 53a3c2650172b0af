"""Dynamic int8 quantization of the fp32 graph."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class QuantConfig:
    """Settings passed to onnxruntime's quantize_dynamic.

    Defaults: MatMul weights only (embeddings stay fp32, which costs size but not speed and
    keeps rare-token rows exact), unsigned 8-bit weights: on AVX2 CPUs without VNNI, signed
    weights saturate in the u8*s8 kernel and hurt BART and ELECTRA (shared/notes).
    """

    weight_type: str = "QUInt8"
    per_channel: bool = False
    reduce_range: bool = False
    op_types: tuple[str, ...] = ("MatMul",)
    nodes_to_exclude: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["op_types"] = list(self.op_types)
        data["nodes_to_exclude"] = list(self.nodes_to_exclude)
        return data


def quantize(source: Path, target: Path, config: QuantConfig, *, external_data: bool) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        model_input=source,
        model_output=target,
        weight_type=QuantType[config.weight_type],
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        op_types_to_quantize=list(config.op_types),
        nodes_to_exclude=list(config.nodes_to_exclude),
        use_external_data_format=external_data,
    )

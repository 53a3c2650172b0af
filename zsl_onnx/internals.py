"""The runtime's parts that the exporter and the benchmarks build on.

Not part of the user API, but a stable seam: ``zsl_onnx_export`` and ``benchmarks/`` import
runtime internals from here only, never from the private ``zsl_onnx._*`` modules, so those
stay free to change. Everything named here is covered by the runtime's tests.
"""

from ._batching import Batch, make_batches
from ._bundle import MANIFEST, MANIFEST_FORMAT, MANIFEST_VERSION, read_json, sha256_file
from ._hypotheses import DEFAULT_TEMPLATE, build_hypotheses
from ._inference import RunBatch, run_encodings
from ._labels import LabelSpec, resolve_labels
from ._session import LogitsSession, create_session
from ._tokenization import PairTokenizer, resolve_max_length

__all__ = [
    "DEFAULT_TEMPLATE",
    "MANIFEST",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "Batch",
    "LabelSpec",
    "LogitsSession",
    "PairTokenizer",
    "RunBatch",
    "build_hypotheses",
    "create_session",
    "make_batches",
    "read_json",
    "resolve_labels",
    "resolve_max_length",
    "run_encodings",
    "sha256_file",
]

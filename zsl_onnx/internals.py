"""The runtime's parts that the exporter, zsl-classify and the benchmarks build on.

Not part of the user API, but a stable seam: ``zsl_onnx_export``, the ``zsl_onnx.classify`` and
``zsl_onnx.serve`` applications and ``benchmarks/`` import runtime internals from here only, never
from the private ``zsl_onnx._*`` modules, so those stay free to change. Everything named here is covered by the
runtime's tests. The output lock (one writer per file) is here because zsl-classify guards its
output with it and the exporter its staging directory.
"""

from ._batching import Batch, make_batches
from ._bundle import MANIFEST, MANIFEST_FORMAT, MANIFEST_VERSION, read_bundle, read_json, sha256_file
from ._manifest import EMBEDDING_MANIFEST_VERSION
from ._embedding import EmbeddingScorer, load_embedding_scorer
from ._embedding import pool_windows
from ._hub import DEFAULT_HUB_TIMEOUT, fetch_matching
from ._classifier import CPU_MAX_BATCH_TOKENS, DEFAULT_BATCH_SIZE
from ._classifier import _local_dir as local_bundle_dir
from ._hypotheses import DEFAULT_TEMPLATE, build_hypotheses, is_blank, parse_labels
from ._inference import RunBatch, run_encodings
from ._labels import LabelSpec, resolve_labels
from ._lock import LOCK_SUFFIX, FileLock, lock_is_stale
from ._nli import NliScorer
from ._paths import read_bundle_json, same_file
from ._postprocess import ranked_result
from ._scorer import LoadOptions, Scorer
from ._pooling import PoolingConfig, modes_from_sentence_transformers, pool
from ._postprocess import label_scores
from ._similarity import Scoring, cosine_matrix, similarity_scores
from ._session import LogitsSession, check_threads, create_session
from ._tokenization import PairTokenizer, resolve_max_length
from ._windows import Windows, combine_rows, split_windows

__all__ = [
    "CPU_MAX_BATCH_TOKENS",
    "DEFAULT_HUB_TIMEOUT",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_TEMPLATE",
    "EMBEDDING_MANIFEST_VERSION",
    "LOCK_SUFFIX",
    "MANIFEST",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "Batch",
    "EmbeddingScorer",
    "LoadOptions",
    "NliScorer",
    "Scorer",
    "FileLock",
    "LabelSpec",
    "LogitsSession",
    "PairTokenizer",
    "PoolingConfig",
    "Scoring",
    "Windows",
    "RunBatch",
    "build_hypotheses",
    "check_threads",
    "combine_rows",
    "cosine_matrix",
    "create_session",
    "fetch_matching",
    "is_blank",
    "label_scores",
    "load_embedding_scorer",
    "local_bundle_dir",
    "lock_is_stale",
    "make_batches",
    "modes_from_sentence_transformers",
    "parse_labels",
    "pool",
    "pool_windows",
    "ranked_result",
    "read_bundle",
    "read_bundle_json",
    "read_json",
    "resolve_labels",
    "resolve_max_length",
    "run_encodings",
    "same_file",
    "similarity_scores",
    "split_windows",
    "sha256_file",
]

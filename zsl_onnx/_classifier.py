"""ZeroShotClassifier: orchestrates hypotheses -> tokenization -> batching -> session -> scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, overload

import numpy as np
import onnxruntime as ort

from ._bundle import DEFAULT_HUB_TIMEOUT, Bundle, VariantFile, download, read_bundle
from ._embedding import EmbeddingScorer, load_embedding_scorer
from ._exceptions import BundleError, InvalidInputError
from ._hypotheses import DEFAULT_TEMPLATE, build_hypotheses, parse_labels, parse_sequences
from ._inference import run_encodings
from ._labels import LabelSpec, resolve_labels
from ._postprocess import label_scores, ranked_result
from ._session import LogitsSession, ProviderSpec, create_session, provider_name
from ._tokenization import PairTokenizer, resolve_max_length

DEFAULT_BATCH_SIZE = 32
# CPU cap on padded tokens per micro-batch (rows x width): larger batches fall out of cache.
# Measured by benchmarks/bench_speed.py (token-cap table); GPU providers get no cap.
CPU_MAX_BATCH_TOKENS = 512
# Pairs tokenized and held at once; bounds memory for calls with many texts x many labels.
_PAIRS_IN_FLIGHT = 4096


class ZeroShotClassifier:
    """Zero-shot text classification on ONNX Runtime, with an NLI cross-encoder or an embedding model.

    Build one with :meth:`from_pretrained`. Calling it returns what
    ``transformers.pipeline("zero-shot-classification")`` returns for the same model.
    An NLI bundle needs ``tokenizer``, ``session`` and ``labels``; an embedding bundle needs
    ``embedding`` instead (see :mod:`._embedding`). One classifier may serve several threads
    at once (the embedding path's label cache is locked).
    """

    def __init__(
        self,
        tokenizer: PairTokenizer | None = None,
        session: LogitsSession | None = None,
        labels: LabelSpec | None = None,
        *,
        embedding: EmbeddingScorer | None = None,
        hypothesis_template: str = DEFAULT_TEMPLATE,
        variant: str = "fp32",
        fidelity: Mapping[str, Any] | None = None,
        max_batch_tokens: int | None = None,
    ) -> None:
        if max_batch_tokens is not None and (
            isinstance(max_batch_tokens, bool) or not isinstance(max_batch_tokens, int) or max_batch_tokens < 1
        ):
            raise InvalidInputError(
                f"max_batch_tokens must be a positive integer or None (no cap), not {max_batch_tokens!r}."
            )
        nli_parts = [part is not None for part in (tokenizer, session, labels)]
        if (embedding is None and not all(nli_parts)) or (embedding is not None and any(nli_parts)):
            raise InvalidInputError(
                "Pass either tokenizer, session and labels (an NLI model) or embedding= (an embedding model)."
            )
        self.max_batch_tokens = max_batch_tokens
        self._embedding = embedding
        self._tokenizer = tokenizer
        self._session = session
        self.labels = labels
        self.hypothesis_template = hypothesis_template
        self.variant = variant
        self.fidelity: Mapping[str, Any] = MappingProxyType(dict(fidelity or {}))

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | Path,
        *,
        variant: str | None = None,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        providers: Sequence[ProviderSpec] | None = None,
        threads: int | None = None,
        session_options: ort.SessionOptions | None = None,
        max_length: int | None = None,
        max_batch_tokens: int | Literal["auto"] | None = "auto",
        verify: bool = True,
        hub_timeout: float | None = DEFAULT_HUB_TIMEOUT,
    ) -> ZeroShotClassifier:
        """Load a bundle from a local directory or a Hugging Face Hub repo id.

        ``variant`` is "fp32", "int8" or "fp16"; by default int8 on CPU when the bundle has it
        (fp16 on GPU providers), else fp32. ``max_length`` may lower the model's token limit
        to trade accuracy on long texts for speed. ``max_batch_tokens`` caps the padded tokens of
        one micro-batch ("auto": 512 on CPU, no cap on GPU providers; None: no cap). ``verify`` checks file sizes and sha256
        against the manifest, catching truncated downloads before they give wrong answers.
        ``hub_timeout`` bounds each Hugging Face Hub request, in seconds.
        """
        on_gpu = any(provider_name(p) != "CPUExecutionProvider" for p in providers or ())
        root = _bundle_root(path_or_repo_id, variant=variant, on_gpu=on_gpu, revision=revision,
                            cache_dir=cache_dir, local_files_only=local_files_only, hub_timeout=hub_timeout)
        bundle = read_bundle(root)
        chosen = bundle.choose(variant, on_gpu=on_gpu)
        if verify:
            bundle.verify(chosen)
        common = _common_options(bundle, chosen, on_gpu=on_gpu, max_batch_tokens=max_batch_tokens)
        if bundle.kind == "embedding":
            label = bundle.label_file(chosen)
            scorer = load_embedding_scorer(
                bundle, chosen.path, label_model_path=None if label is None else label.path, max_length=max_length,
                providers=providers, threads=threads, session_options=session_options,
            )
            return cls(embedding=scorer, **common)
        tokenizer, session, labels = _nli_parts(
            bundle, chosen, max_length=max_length, providers=providers, threads=threads,
            session_options=session_options,
        )
        return cls(tokenizer, session, labels, **common)

    @property
    def kind(self) -> str:
        """The bundle's kind: "nli" (scores each text-label pair) or "embedding" (cosines of vectors)."""
        return "embedding" if self._embedding is not None else "nli"

    @property
    def max_length(self) -> int:
        if self._embedding is not None:
            return self._embedding.tokenizer.max_length
        assert self._tokenizer is not None
        return self._tokenizer.max_length

    @property
    def providers(self) -> list[str]:
        if self._embedding is not None:
            return self._embedding.session.providers
        assert self._session is not None
        return self._session.providers

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kind='nli', variant={self.variant!r}, providers={self.providers!r}, "
            f"labels={list(self.labels.names)!r}, max_length={self.max_length})"
        )

    @overload
    def __call__(
        self,
        sequences: str,
        candidate_labels: str | Sequence[str],
        hypothesis_template: str | None = ...,
        multi_label: bool = ...,
        batch_size: int = ...,
    ) -> dict[str, Any]: ...

    @overload
    def __call__(
        self,
        sequences: Sequence[str],
        candidate_labels: str | Sequence[str],
        hypothesis_template: str | None = ...,
        multi_label: bool = ...,
        batch_size: int = ...,
    ) -> list[dict[str, Any]]: ...

    def __call__(
        self,
        sequences: str | Sequence[str],
        candidate_labels: str | Sequence[str],
        hypothesis_template: str | None = None,
        multi_label: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Classify; returns the pipeline's ``{"sequence", "labels", "scores"}`` dict(s).

        A single string gives one dict, a list gives a list. Labels come sorted by score.
        """
        texts, single = parse_sequences(sequences)
        labels = parse_labels(candidate_labels)
        matrix = self._label_scores(texts, labels, hypothesis_template, multi_label, batch_size)
        results = [ranked_result(text, labels, row) for text, row in zip(texts, matrix)]
        return results[0] if single else results

    def scores(
        self,
        sequences: str | Sequence[str],
        candidate_labels: str | Sequence[str],
        hypothesis_template: str | None = None,
        multi_label: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> np.ndarray:
        """Scores as a float32 matrix [texts, labels], labels in the order given (not ranked)."""
        texts, _ = parse_sequences(sequences)
        labels = parse_labels(candidate_labels)
        return self._label_scores(texts, labels, hypothesis_template, multi_label, batch_size)

    def pair_logits(
        self, premises: Sequence[str], hypotheses: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE
    ) -> np.ndarray:
        """Raw NLI logits [pairs, classes] for explicit premise/hypothesis pairs (NLI evaluation)."""
        premise_list, _ = parse_sequences(premises)
        hypothesis_list, _ = parse_sequences(hypotheses)
        if len(premise_list) != len(hypothesis_list):
            raise InvalidInputError(
                f"Got {len(premise_list)} premises but {len(hypothesis_list)} hypotheses; "
                "pair_logits needs one hypothesis per premise."
            )
        if self._embedding is not None:
            raise InvalidInputError("pair_logits needs an NLI bundle; this is an embedding bundle (see similarities()).")
        index = np.arange(len(premise_list))
        return self._run(premise_list, hypothesis_list, np.stack([index, index], axis=1), batch_size)

    def similarities(
        self,
        sequences: str | Sequence[str],
        candidate_labels: str | Sequence[str],
        hypothesis_template: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> np.ndarray:
        """Raw cosine similarities [texts, labels] of an embedding bundle, labels in the order given."""
        texts, _ = parse_sequences(sequences)
        labels = parse_labels(candidate_labels)
        hypotheses = build_hypotheses(labels, hypothesis_template if hypothesis_template is not None else self.hypothesis_template)
        return self._embedder().cosines(
            texts, hypotheses, batch_size=_batch_size(batch_size), max_tokens=self.max_batch_tokens
        )

    def embed(self, sequences: str | Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Sentence vectors [texts, dim] of an embedding bundle (pooled, and normalized if the model does)."""
        texts, _ = parse_sequences(sequences)
        return self._embedder().embed(texts, batch_size=_batch_size(batch_size), max_tokens=self.max_batch_tokens)

    def _embedder(self) -> EmbeddingScorer:
        if self._embedding is None:
            raise InvalidInputError("similarities() and embed() need an embedding bundle; this is an NLI bundle.")
        return self._embedding

    def _label_scores(
        self,
        texts: list[str],
        labels: list[str],
        template: str | None,
        multi_label: bool,
        batch_size: int,
    ) -> np.ndarray:
        hypotheses = build_hypotheses(labels, template if template is not None else self.hypothesis_template)
        if self._embedding is not None:
            return self._embedding.label_scores(
                texts, hypotheses, multi_label=multi_label, batch_size=_batch_size(batch_size),
                max_tokens=self.max_batch_tokens,
            )
        grid = np.stack(
            np.meshgrid(np.arange(len(texts)), np.arange(len(labels)), indexing="ij"), axis=-1
        ).reshape(-1, 2)
        logits = self._run(texts, hypotheses, grid, batch_size)
        logits = logits.reshape(len(texts), len(labels), -1)
        return label_scores(logits, self.labels, multi_label=multi_label)

    def _run(
        self, premises: list[str], hypotheses: list[str], index_pairs: np.ndarray, batch_size: int
    ) -> np.ndarray:
        """Logits for (premise index, hypothesis index) rows, in row order."""
        _batch_size(batch_size)
        assert self._tokenizer is not None and self._session is not None and self.labels is not None
        hypothesis_encodings = self._tokenizer.encode_hypotheses(hypotheses)
        premise_encodings = self._tokenizer.encode_premises(premises)
        n_classes = len(self.labels.names)
        out = np.empty((len(index_pairs), n_classes), dtype=np.float32)
        for start in range(0, len(index_pairs), _PAIRS_IN_FLIGHT):
            chunk = index_pairs[start : start + _PAIRS_IN_FLIGHT]
            encodings = [
                self._tokenizer.join(premise_encodings[p], hypothesis_encodings[h]) for p, h in chunk
            ]
            logits = run_encodings(
                encodings,
                self._session.run,
                batch_size=batch_size,
                pad_id=self._tokenizer.pad_id,
                max_tokens=self.max_batch_tokens,
            )
            if logits.shape[1] != n_classes:
                raise BundleError(
                    f"The model returns {logits.shape[1]} logits per pair but its config names "
                    f"{n_classes} labels {list(self.labels.names)}; config.json does not match the ONNX file."
                )
            out[start : start + len(chunk)] = logits
        return out


def _batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, not {batch_size!r}.")
    return batch_size


def _bundle_root(
    path_or_repo_id: str | Path,
    *,
    variant: str | None,
    on_gpu: bool,
    revision: str | None,
    cache_dir: str | Path | None,
    local_files_only: bool,
    hub_timeout: float | None,
) -> Path:
    """The bundle's directory: a local one as given, else the Hub download of the files needed."""
    root = _local_dir(path_or_repo_id)
    if root is not None:
        return root
    return download(
        str(path_or_repo_id),
        variant=variant,
        on_gpu=on_gpu,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        timeout=hub_timeout,
    )


def _common_options(
    bundle: Bundle, chosen: VariantFile, *, on_gpu: bool, max_batch_tokens: int | Literal["auto"] | None
) -> dict[str, Any]:
    """Constructor options both bundle kinds share, from the manifest and the chosen variant."""
    manifest = bundle.manifest or {}
    gpu_cap = None if on_gpu else CPU_MAX_BATCH_TOKENS
    return {
        "hypothesis_template": manifest.get("hypothesis_template", DEFAULT_TEMPLATE),
        "variant": chosen.name,
        "fidelity": chosen.fidelity,
        "max_batch_tokens": gpu_cap if max_batch_tokens == "auto" else max_batch_tokens,
    }


def _nli_parts(
    bundle: Bundle,
    chosen: VariantFile,
    *,
    max_length: int | None,
    providers: Sequence[ProviderSpec] | None,
    threads: int | None,
    session_options: ort.SessionOptions | None,
) -> tuple[PairTokenizer, LogitsSession, LabelSpec]:
    """Tokenizer, session and label mapping of an NLI bundle; checks ``max_length`` first."""
    manifest = bundle.manifest or {}
    labels = LabelSpec.from_json(manifest["labels"]) if "labels" in manifest else resolve_labels(bundle.config)
    limit = manifest.get("max_length") or resolve_max_length(bundle.tokenizer_config, bundle.config)
    if max_length is not None and (not isinstance(max_length, int) or not 8 <= max_length <= limit):
        raise InvalidInputError(
            f"max_length must be an integer from 8 to the model's limit {limit}, not {max_length!r}."
        )
    tokenizer = PairTokenizer.from_file(
        bundle.tokenizer_file,
        tokenizer_config=bundle.tokenizer_config,
        config=bundle.config,
        max_length=max_length or limit,
    )
    session = create_session(chosen.path, providers=providers, threads=threads, session_options=session_options)
    return tokenizer, LogitsSession(session), labels


def _local_dir(path_or_repo_id: str | Path) -> Path | None:
    """A local directory, or None for something that can only be a Hub repo id."""
    path = Path(path_or_repo_id).expanduser()
    if path.is_dir():
        return path
    text = str(path_or_repo_id)
    looks_local = (
        isinstance(path_or_repo_id, Path)
        or path.exists()
        or text.startswith((".", "/", "~", "\\"))
        or text.count("/") > 1
        or "\\" in text
    )
    if looks_local:
        raise BundleError(
            f"{text} is not a model directory (it does not exist or is a file). Pass a directory "
            "made by zsl-export, or a Hugging Face Hub repo id like 'org/model'."
        )
    return None

"""Scale-out on Ray: a callable class for Ray Data's ``map_batches``, and an ordered actor pool.

``ZeroShotMapper`` adds the fields ``zsl-classify`` writes (``labels``, ``scores``,
``top_label``, ``top_score`` and, with a threshold, ``above_threshold``) to every batch of a
Ray Data dataset. Ray builds one instance per actor, so each actor loads the bundle once::

    ds.map_batches(ZeroShotMapper, fn_constructor_kwargs={"model": "bundle/", "labels": [...]},
                   concurrency=4, num_cpus=2, batch_format="pandas")

``ChunkPool`` is what ``zsl-classify --ray`` runs on: chunks of texts go to a few actors and
their results come back in submission order, so the driver writes the output exactly as a
local run does. Importing this module does not import Ray; Ray is imported when one of these
is first used, with an error naming the ``[ray]`` extra when it is missing.
"""

from __future__ import annotations

import importlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np

from ._classifier import DEFAULT_BATCH_SIZE, ZeroShotClassifier
from .classify.truncation import classify_counting
from .classify.writers import RESULT_FIELDS, THRESHOLD_FIELD, classified_fields, output_fields
from ._exceptions import InvalidInputError, ZslOnnxError
from ._hypotheses import build_hypotheses, parse_labels

__all__ = ["OUTPUT_COLUMNS", "ChunkPool", "ZeroShotMapper", "classify_dataset", "connect"]

OUTPUT_COLUMNS = (*RESULT_FIELDS, THRESHOLD_FIELD)
EXTRA_HINT = "pip install 'zsl-onnx[ray]'"

T = TypeVar("T")


def require_ray() -> ModuleType:
    """Import Ray, or explain which extra installs it."""
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise InvalidInputError(f"Ray is not installed; scaling out needs the [ray] extra: {EXTRA_HINT}.") from exc


class ZeroShotMapper:
    """Adds zsl-classify's fields to a Ray Data batch (pandas DataFrame or dict of numpy arrays).

    ``model`` is a bundle directory every node can read (shared storage) or a Hub repo id.
    ``labels`` may be None only for :meth:`classify` calls that name the labels (zsl-classify
    ``--labels-field`` sends each chunk with one label set per text). ``threads`` is ONNX
    Runtime's intra-op threads in this actor: give the actor as many CPUs (``num_cpus=threads``
    in ``map_batches``) so Ray places ``node CPUs // threads`` actors per node. The input batch
    is never modified; a copy with the new columns is returned.
    """

    def __init__(
        self,
        model: str | Path,
        labels: str | Sequence[str] | None,
        *,
        text_column: str = "text",
        hypothesis_template: str | None = None,
        multi_label: bool = False,
        threshold: float | None = None,
        field_prefix: str = "",
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = 1,
        variant: str | None = None,
        max_length: int | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        long_text: str = "truncate",
        max_windows: int | None = None,
    ) -> None:
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise InvalidInputError(f"threshold must be between 0 and 1, not {threshold}.")
        self.labels = None if labels is None else parse_labels(labels)
        self.text_column = text_column
        self.multi_label = multi_label
        self.threshold = threshold
        self.columns = output_fields("jsonl", threshold, field_prefix)
        self.field_prefix = field_prefix
        self.batch_size = batch_size
        self.long_text: dict[str, Any] = {} if long_text == "truncate" else {"long_text": long_text}
        if max_windows is not None:
            self.long_text["max_windows"] = max_windows
        self.classifier = ZeroShotClassifier.from_pretrained(
            model, variant=variant, threads=threads, max_length=max_length,
            revision=revision, local_files_only=local_files_only,
        )
        self.hypothesis_template = hypothesis_template or self.classifier.hypothesis_template
        build_hypotheses(self.labels or ["label"], self.hypothesis_template)  # a bad template fails at start, not per batch

    def describe(self) -> dict[str, str]:
        """What the driver needs to know about the loaded model (it does not load one itself)."""
        return {"variant": self.classifier.variant, "hypothesis_template": self.hypothesis_template,
                "max_length": str(self.classifier.max_length)}

    def classify(self, texts: list[str], label_sets: list[list[str]] | None = None) -> list[dict[str, Any]]:
        """The classifier's ranked results for ``texts``, exactly as a local call returns them:
        against ``labels``, or against ``label_sets``, one label list per text."""
        if not texts:
            return []
        labels = self._labels_for(label_sets)
        return self.classifier(
            texts, labels, hypothesis_template=self.hypothesis_template,
            multi_label=self.multi_label, batch_size=self.batch_size, **self.long_text,
        )

    def classify_counted(self, texts: list[str], label_sets: list[list[str]] | None = None) -> list[dict[str, Any]]:
        """``classify``, each result with the tokens truncation left unread (``DROPPED``): what
        ``zsl-classify --ray`` counts. The warning is caught in the actor, never logged."""
        if label_sets is None:  # a subclass that overrides classify(texts) keeps working
            return classify_counting(lambda batch, _labels: self.classify(batch), texts, ())
        return classify_counting(lambda batch, sets: self.classify(batch, sets), texts, label_sets)

    def _labels_for(self, label_sets: list[list[str]] | None) -> list[str] | list[list[str]]:
        if label_sets is not None:
            return label_sets
        if self.labels is None:
            raise InvalidInputError("This ZeroShotMapper was built without labels; pass them to classify().")
        return self.labels

    def __call__(self, batch: Any) -> Any:
        texts = self._texts(batch)
        labels = self._labels_for(None)
        results = self.classify(texts)
        for i, result in enumerate(results):
            if not np.isfinite(result["scores"]).all():
                raise ZslOnnxError(
                    f"The model returned a non-finite score (NaN or infinity) for row {i} of a batch "
                    f"({texts[i][:60]!r}); the model file may be damaged, or try the fp32 variant."
                )
        rows = [classified_fields({}, r["labels"], r["scores"], self.threshold, self.field_prefix) for r in results]
        columns = {name: [row[name] for row in rows] for name in self.columns}
        if _is_dataframe(batch):
            out = batch.copy()
            for name, values in columns.items():
                out[name] = values
            return out
        out = dict(batch)
        for name, values in columns.items():
            out[name] = _numpy_column(name[len(self.field_prefix):], values, len(labels))
        return out

    def _texts(self, batch: Any) -> list[str]:
        if not (_is_dataframe(batch) or isinstance(batch, Mapping)):
            raise InvalidInputError(
                f"ZeroShotMapper takes pandas or numpy batches, not {type(batch).__name__}: "
                'use batch_format="pandas" or batch_format="numpy".'
            )
        names = list(batch.columns if _is_dataframe(batch) else batch.keys())
        if self.text_column not in names:
            raise InvalidInputError(
                f"The batch has no column {self.text_column!r} (columns: {', '.join(map(str, names))}); "
                "pass text_column=... to name the column that holds the text."
            )
        taken = [name for name in self.columns if name in names]
        if taken:
            raise InvalidInputError(
                f"The batch already has columns {taken}, which the classifier writes; rename them first "
                "(ds.rename_columns) or pass field_prefix='zsl_', so nothing of yours is overwritten."
            )
        texts = list(batch[self.text_column])
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise InvalidInputError(
                    f"Row {i} of a batch has {type(text).__name__} {str(text)[:40]!r} in column "
                    f"{self.text_column!r}, not a non-empty string; filter such rows out before classifying."
                )
        return texts


def _is_dataframe(batch: Any) -> bool:
    return type(batch).__name__ == "DataFrame" and hasattr(batch, "columns")


def _numpy_column(name: str, values: list[Any], n_labels: int) -> np.ndarray:
    """Ray Data's numpy batches hold one array per column: labels and scores are [rows, labels]."""
    if name == "labels":
        return np.array(values, dtype=object).reshape(len(values), n_labels).astype(str)
    if name == "scores":
        return np.array(values, dtype=np.float64).reshape(len(values), n_labels)
    if name == "top_label":
        return np.array(values, dtype=object).astype(str)
    if name == "above_threshold":
        return np.array(values, dtype=bool)
    return np.array(values, dtype=np.float64)


def classify_dataset(
    ds: Any,
    model: str | Path,
    labels: str | Sequence[str],
    *,
    workers: int = 1,
    threads: int = 1,
    batch_format: str = "pandas",
    records_per_batch: int | None = 256,
    **options: Any,
) -> Any:
    """``ds`` with zsl-classify's fields added, on ``workers`` actors of ``threads`` CPUs each.

    ``options`` are :class:`ZeroShotMapper`'s (``text_column``, ``threshold``, ``variant``...).
    """
    require_ray()
    if workers < 1 or threads < 1:
        raise InvalidInputError(f"workers and threads must be at least 1, not {workers} and {threads}.")
    return ds.map_batches(
        ZeroShotMapper,
        fn_constructor_kwargs={"model": str(model), "labels": parse_labels(labels), "threads": threads, **options},
        concurrency=workers,
        num_cpus=threads,
        batch_size=records_per_batch,
        batch_format=batch_format,
    )


def connect(address: str | None, num_cpus: int | None = None) -> Callable[[], None]:
    """Join the cluster at ``address`` ("auto" or host:port), or start a local one when None.

    Returns what to call at the end: it stops a cluster this started, and nothing else. A Ray
    session already open in this process (a notebook, a test) is used as it is.
    """
    ray = require_ray()
    if ray.is_initialized():
        return lambda: None
    try:
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR}  # our errors say what went wrong
        if address is None:
            ray.init(num_cpus=num_cpus, include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "a local Ray cluster" if address is None else f"the Ray cluster at {address!r}"
        raise ZslOnnxError(f"Cannot connect to {where}: {exc}") from exc
    return ray.shutdown


class ChunkPool:
    """Classifies chunks of texts on ``workers`` actors; results come back in submission order.

    At most two chunks per actor are in flight, so reading stays a little ahead of the model
    and memory stays bounded however large the input. Actors that die are restarted by Ray
    and their pending chunks retried (``max_restarts``/``max_task_retries`` = -1, as Ray
    Data's own actor pools do): since every result is collected by its position, a retried
    chunk is written once, in its place.
    """

    def __init__(self, mapper_options: dict[str, Any], workers: int, threads: int) -> None:
        self._ray = require_ray()
        if workers < 1 or threads < 1:
            raise InvalidInputError(f"--workers and --threads must be at least 1, not {workers} and {threads}.")
        cpus = int(self._ray.cluster_resources().get("CPU", 0))
        if workers * threads > cpus:  # actors that cannot be placed would wait forever
            raise InvalidInputError(
                f"{workers} workers x {threads} threads need {workers * threads} CPUs, but the Ray cluster has "
                f"{cpus}; lower --workers or --threads, or add nodes."
            )
        remote = self._ray.remote(num_cpus=threads, max_restarts=-1, max_task_retries=-1)(ZeroShotMapper)
        self._actors = [remote.remote(threads=threads, **mapper_options) for _ in range(workers)]
        self._load = [0] * workers
        try:
            self.info: dict[str, str] = self._get(self._actors[0].describe.remote())
            self._get([actor.describe.remote() for actor in self._actors[1:]])  # all loaded before reading starts
        except BaseException:
            self.close()
            raise

    def map(self, chunks: Iterable[T], texts: Callable[[T], list[str]],
            label_sets: Callable[[T], list[list[str]]] | None = None) -> Iterator[tuple[T, list[dict[str, Any]]]]:
        """Yield ``(chunk, results)`` in the order of ``chunks``.

        With ``label_sets`` each chunk's task carries one label list per text (the records'
        own labels travel with them); otherwise the actors use the labels they were built with.
        """
        pending: deque[tuple[T, int, Any]] = deque()
        for chunk in chunks:
            if len(pending) >= 2 * len(self._actors):
                yield self._collect(pending)
            i = self._load.index(min(self._load))
            self._load[i] += 1
            task = (texts(chunk),) if label_sets is None else (texts(chunk), label_sets(chunk))
            pending.append((chunk, i, self._actors[i].classify_counted.remote(*task)))
        while pending:
            yield self._collect(pending)

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []

    def _collect(self, pending: deque[tuple[T, int, Any]]) -> tuple[T, list[dict[str, Any]]]:
        chunk, i, ref = pending.popleft()
        self._load[i] -= 1
        return chunk, self._get(ref)

    def _get(self, ref: Any) -> Any:
        """ray.get, with our own errors raised again as themselves rather than wrapped."""
        exceptions = self._ray.exceptions
        try:
            return self._ray.get(ref)
        except exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ZslOnnxError):
                raise cause from None
            raise ZslOnnxError(f"A Ray worker failed: {exc}") from exc
        except exceptions.RayActorError as exc:
            if exc.actor_init_failed:  # the last line of Ray's message is the "module.Error: message" line
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
                cause = lines[-1].rpartition("._exceptions.")[2] if lines else str(exc)
                raise ZslOnnxError(f"A Ray worker could not load the model: {cause}") from None
            raise ZslOnnxError(
                f"A Ray worker died and could not be restarted (is zsl-onnx installed on every node?): {exc}"
            ) from exc


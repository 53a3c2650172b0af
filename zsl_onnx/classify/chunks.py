"""The two ways a zsl-classify run turns chunks of texts into results: here, or on Ray (``--ray``).

The command reads, writes, checkpoints and counts the same way with or without Ray; only the
step that classifies a chunk differs. Both have the shape ``map(chunks, texts)`` -> ``(chunk,
results)`` in input order: :class:`LocalChunks` calls the classifier in this process,
:class:`RayChunks` sends each chunk to a Ray actor and collects the results in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from zsl_onnx import ZeroShotClassifier
from zsl_onnx.internals import local_bundle_dir

from .truncation import classify_counting

from .options import ClassifyOptions

__all__ = ["LOCAL_CLUSTER", "ChunkClassifier", "LocalChunks", "RayChunks"]

T = TypeVar("T")
LOCAL_CLUSTER = "local"


class ChunkClassifier(Protocol):
    variant: str
    max_length: int
    hypothesis_template: str

    def map(self, chunks: Iterable[T], texts: Callable[[T], list[str]]) -> Iterator[tuple[T, list[dict[str, Any]]]]:
        """Yield each chunk with the classifier's results for ``texts(chunk)``, in input order."""
        ...

    def close(self) -> None: ...


class LocalChunks:
    """Classifies chunks in this process, one after the other.

    With ``label_sets`` (``--labels-field``) the records of a chunk go through one call with one
    label list per text. Each result carries ``DROPPED``, the tokens truncation left unread.
    """

    def __init__(self, clf: ZeroShotClassifier, labels: list[str], template: str | None, multi_label: bool,
                 batch_size: int, long_text: str = "truncate", max_windows: int | None = None,
                 label_sets: Callable[[Any], list[list[str]]] | None = None) -> None:
        self._clf = clf
        self._labels = labels
        self._label_sets = label_sets
        self.hypothesis_template = template or clf.hypothesis_template
        self._options: dict[str, Any] = {"hypothesis_template": self.hypothesis_template,
                                         "multi_label": multi_label, "batch_size": batch_size}
        if long_text != "truncate":  # the runtime's defaults otherwise
            self._options["long_text"] = long_text
        if max_windows is not None:
            self._options["max_windows"] = max_windows
        self.variant = clf.variant
        self.max_length = clf.max_length

    def map(self, chunks: Iterable[T], texts: Callable[[T], list[str]]) -> Iterator[tuple[T, list[dict[str, Any]]]]:
        for chunk in chunks:
            batch = texts(chunk)
            labels = self._labels if self._label_sets is None else self._label_sets(chunk)
            yield chunk, (classify_counting(self._clf, batch, labels, **self._options) if batch else [])

    def close(self) -> None:
        """Nothing to release: the classifier goes with the process."""


class RayChunks:
    """Classifies chunks on Ray actors started here (they load the model); close() stops them.

    With ``label_sets`` (``--labels-field``) each chunk's task carries the label list of each
    of its texts, so an actor makes the one call :class:`LocalChunks` makes.
    """

    def __init__(self, options: ClassifyOptions, labels: list[str],
                 label_sets: Callable[[Any], list[list[str]]] | None = None) -> None:
        from zsl_onnx.ray import ChunkPool, connect, require_ray

        ray = require_ray()
        local_bundle_dir(options.model)  # a bundle path missing here fails now, not after the cluster started
        threads = options.threads or 1
        self._disconnect = connect(None if options.ray == LOCAL_CLUSTER else options.ray)
        try:
            workers = options.workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
            mapper = {"model": str(options.model), "labels": labels or None, "hypothesis_template": options.template,
                      "multi_label": options.multi_label, "batch_size": options.batch_size,
                      "variant": options.variant, "max_length": options.max_length,
                      "local_files_only": options.offline, "long_text": options.long_text,
                      "max_windows": options.max_windows}
            self._pool = ChunkPool(mapper, workers=workers, threads=threads)
        except BaseException:
            self._disconnect()
            raise
        self.variant = self._pool.info["variant"]
        self.max_length = int(self._pool.info["max_length"])
        self.hypothesis_template = self._pool.info["hypothesis_template"]
        self._label_sets = label_sets

    def map(self, chunks: Iterable[T], texts: Callable[[T], list[str]]) -> Iterator[tuple[T, list[dict[str, Any]]]]:
        return self._pool.map(chunks, texts, self._label_sets)

    def close(self) -> None:
        try:
            self._pool.close()
        finally:
            self._disconnect()

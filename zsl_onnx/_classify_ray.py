"""``zsl-classify --ray``: the options, and the two ways a run turns chunks of texts into results.

The command reads, writes, checkpoints and counts the same way with or without Ray; only the
step that classifies a chunk differs. Both have the shape ``map(chunks, texts)`` -> ``(chunk,
results)`` in input order: :class:`LocalChunks` calls the classifier in this process,
:class:`RayChunks` sends each chunk to a Ray actor and collects the results in order.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from ._classifier import ZeroShotClassifier, _local_dir
from ._exceptions import InvalidInputError

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scale-out on Ray (pip install 'zsl-onnx[ray]')")
    group.add_argument("--ray", nargs="?", const=LOCAL_CLUSTER, metavar="ADDRESS",
                       help="classify on Ray actors: no value starts a local cluster for the run, 'auto' joins "
                            "this machine's cluster, or give its address (host:6379, ray://host:10001)")
    group.add_argument("--workers", type=int,
                       help="with --ray: actors, each with --threads threads (default: the cluster's CPUs / --threads)")


def check_arguments(args: argparse.Namespace) -> None:
    if args.ray is None and args.workers is not None:
        raise InvalidInputError("--workers needs --ray.")
    if args.workers is not None and args.workers < 1:
        raise InvalidInputError(f"--workers must be at least 1, not {args.workers}.")


class LocalChunks:
    """Classifies chunks in this process, one after the other."""

    def __init__(self, clf: ZeroShotClassifier, labels: list[str], template: str | None, multi_label: bool,
                 batch_size: int) -> None:
        self._clf = clf
        self._labels = labels
        self.hypothesis_template = template or clf.hypothesis_template
        self._options: dict[str, Any] = {"hypothesis_template": self.hypothesis_template,
                                         "multi_label": multi_label, "batch_size": batch_size}
        self.variant = clf.variant
        self.max_length = clf.max_length

    def map(self, chunks: Iterable[T], texts: Callable[[T], list[str]]) -> Iterator[tuple[T, list[dict[str, Any]]]]:
        for chunk in chunks:
            batch = texts(chunk)
            yield chunk, (self._clf(batch, self._labels, **self._options) if batch else [])

    def close(self) -> None:
        """Nothing to release: the classifier goes with the process."""


class RayChunks:
    """Classifies chunks on Ray actors started here (they load the model); close() stops them."""

    def __init__(self, args: argparse.Namespace, labels: list[str]) -> None:
        from .ray import ChunkPool, connect, require_ray

        ray = require_ray()
        _local_dir(args.model)  # a bundle path missing here fails now, not after the cluster started
        threads = args.threads or 1
        self._disconnect = connect(None if args.ray == LOCAL_CLUSTER else args.ray)
        try:
            workers = args.workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
            options = {"model": str(args.model), "labels": labels, "hypothesis_template": args.template,
                       "multi_label": args.multi_label, "batch_size": args.batch_size, "variant": args.variant,
                       "max_length": args.max_length, "local_files_only": args.offline}
            self._pool = ChunkPool(options, workers=workers, threads=threads)
        except BaseException:
            self._disconnect()
            raise
        self.variant = self._pool.info["variant"]
        self.max_length = int(self._pool.info["max_length"])
        self.hypothesis_template = self._pool.info["hypothesis_template"]

    def map(self, chunks: Iterable[T], texts: Callable[[T], list[str]]) -> Iterator[tuple[T, list[dict[str, Any]]]]:
        return self._pool.map(chunks, texts)

    def close(self) -> None:
        try:
            self._pool.close()
        finally:
            self._disconnect()

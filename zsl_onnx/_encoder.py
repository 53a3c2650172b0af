"""Embedding stage 4: a padded batch -> the transformer's token vectors -> pooled sentence vectors.

The graph of an embedding bundle outputs ``last_hidden_state`` [rows, tokens, hidden]; the
pooling stage (:mod:`._pooling`) turns it into one vector per row with the batch's own
attention mask, so padding never leaks into a vector.
"""

from __future__ import annotations

import numpy as np

from ._batching import Batch
from ._pooling import PoolingConfig, pool
from ._session import InferenceSessionLike, build_feed, input_feed_spec, require_output

__all__ = ["TOKEN_OUTPUT", "EmbeddingSession"]

TOKEN_OUTPUT = "last_hidden_state"


class EmbeddingSession:
    """Feeds :class:`Batch` objects to an encoder graph and pools its token vectors."""

    def __init__(self, session: InferenceSessionLike, pooling: PoolingConfig) -> None:
        self._session = session
        self._feed_spec = input_feed_spec(session)
        require_output(
            session, TOKEN_OUTPUT, "an embedding bundle needs the transformer's token vectors. Re-export it with zsl-export."
        )
        self.pooling = pooling

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def run(self, batch: Batch, *, prompt_length: int = 0) -> np.ndarray:
        """Pooled float32 vectors [rows, dim] for one batch."""
        (hidden,) = self._session.run([TOKEN_OUTPUT], build_feed(self._feed_spec, batch))
        return pool(np.asarray(hidden), batch.attention_mask, self.pooling, prompt_length=prompt_length)

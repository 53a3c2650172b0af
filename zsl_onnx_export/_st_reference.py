"""The PyTorch reference an embedding export is validated against.

sentence-transformers itself is not a dependency (its current releases need transformers 5),
so its Pooling and Normalize forward passes are reproduced here in torch, line for line from
``sentence_transformers/models/Pooling.py`` and ``Normalize.py``, on the transformer body's
``last_hidden_state`` computed with the transformers tokenizer and model. The runtime's numpy
pooling stage is an independent implementation checked against this one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from zsl_onnx.internals import PoolingConfig


def torch_pool(token_embeddings: Any, attention_mask: Any, config: PoolingConfig, *, prompt_length: int = 0) -> Any:
    """sentence-transformers' Pooling (then Normalize if configured) on torch tensors."""
    import torch

    token_embeddings = token_embeddings.clone()
    attention_mask = attention_mask.clone()
    if not config.include_prompt and prompt_length:
        attention_mask[:, :prompt_length] = 0
    expanded = attention_mask.unsqueeze(-1).expand(token_embeddings.size()).to(token_embeddings.dtype)
    outputs = []
    for mode in config.modes:
        if mode == "cls":
            outputs.append(token_embeddings[:, 0])
        elif mode == "max":
            masked = token_embeddings.masked_fill(expanded == 0, -1e9)
            outputs.append(torch.max(masked, 1)[0])
        elif mode in ("mean", "mean_sqrt_len"):
            summed = torch.sum(token_embeddings * expanded, 1)
            count = torch.clamp(expanded.sum(1), min=1e-9)
            outputs.append(summed / count if mode == "mean" else summed / torch.sqrt(count))
        elif mode == "weightedmean":
            weights = torch.arange(1, token_embeddings.shape[1] + 1, dtype=token_embeddings.dtype)
            weighted = expanded * weights.unsqueeze(0).unsqueeze(-1)
            outputs.append(torch.sum(token_embeddings * weighted, 1) / torch.clamp(weighted.sum(1), min=1e-9))
        else:  # lasttoken
            seq_len = attention_mask.shape[1]
            values, indices = attention_mask.flip(1).max(1)
            indices = torch.where(values == 0, seq_len - 1, indices)
            gather = (seq_len - indices - 1).unsqueeze(-1).repeat(1, token_embeddings.shape[2]).unsqueeze(1)
            outputs.append(torch.gather(token_embeddings * expanded, 1, gather).squeeze(1))
    vectors = torch.cat(outputs, 1)
    if config.normalize:
        vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
    return vectors


def torch_embeddings(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    pooling: PoolingConfig,
    prompt: str = "",
    max_length: int,
    batch_size: int = 16,
) -> np.ndarray:
    """Reference vectors [texts, dim] as sentence-transformers' ``encode`` computes them."""
    import torch

    prompt_length = 0
    if prompt:
        prompt_length = len(tokenizer(prompt, truncation=True, max_length=max_length)["input_ids"]) - 1
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            chunk = [prompt + text for text in texts[start : start + batch_size]]
            inputs = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**inputs).last_hidden_state
            out.append(torch_pool(hidden, inputs["attention_mask"], pooling, prompt_length=prompt_length).numpy())
    return np.concatenate(out).astype(np.float32)

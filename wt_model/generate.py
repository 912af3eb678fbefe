"""Autoregressive sampling for both models."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def generate(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Append `max_new_tokens` sampled tokens to idx (B, T); returns (B, T + max_new_tokens).

    The context is cropped to the last block_size tokens. The prediction comes from the last row of the
    logits: every position for the standard model; for the worker model the last position, which is always a
    worker. temperature 0 means greedy decoding. The caller sets model.eval() (dropout off).
    """
    if temperature < 0:
        raise ValueError(f"temperature={temperature!r} is invalid: expected a number >= 0 (0 = greedy).")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k={top_k!r} is invalid: expected None or an integer >= 1.")
    block_size = model.cfg.block_size
    for _ in range(max_new_tokens):
        context = idx[:, -block_size:]  # (B, T')
        logits, _ = model(context)
        logits = logits[:, -1, :].float()  # (B, V): the last position (a worker in the worker model)
        if temperature == 0:
            next_token = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        else:
            logits = logits / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]  # (B, 1)
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = torch.softmax(logits, dim=-1)
            next_token = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
        idx = torch.cat([idx, next_token], dim=1)
    return idx

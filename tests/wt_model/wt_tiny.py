"""Tiny configs shared by the wt_model tests."""

from __future__ import annotations

import torch

from wt_model import ModelConfig, build_model


def tiny_config(**overrides) -> ModelConfig:
    fields = dict(vocab_size=65, block_size=64, n_embd=32, n_head=2, n_layer=2, dropout=0.0, worker_interval=4)
    fields.update(overrides)
    return ModelConfig(**fields)


def tiny_model(seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(tiny_config(**overrides))


def tokens(batch: int, seq_len: int, vocab: int = 65, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, seq_len), generator=generator)

"""The baseline: a pre-norm decoder where every token is updated by gated attention and an FFN.

With a token mixer (the registry's `standard-mixer`: the ablation of what the worker's mixer alone buys), each
block first passes the stream through the worker's causal depthwise conv, whose normalised output feeds the
attention, exactly as in `WorkerBlock`; every token still runs attention and the FFN.
"""

from __future__ import annotations

import torch
from torch import nn

from wt_model import archs
from wt_model.config import ModelConfig
from wt_model.fused import dropout_add
from wt_model.layers import (
    CausalDepthwiseConv,
    FeedForward,
    GatedAttention,
    RMSNorm,
    Rotary,
    check_length,
    init_weights,
    next_token_loss,
)


class StandardBlock(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.mixer = CausalDepthwiseConv(cfg.n_embd, cfg.conv_kernel) if archs.get(cfg.arch).mixer else None
        self.norm1 = RMSNorm(cfg.n_embd)
        self.attn = GatedAttention(cfg)
        self.norm2 = RMSNorm(cfg.n_embd)
        self.ffn = FeedForward(cfg)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        h = self.norm1(x if self.mixer is None else self.mixer(x))  # (B, T, C)
        x = dropout_add(x, self.attn(h, h, rope, rope, mask=None), self.dropout, self.training)  # mask=None: causal
        return dropout_add(x, self.ffn(self.norm2(x)), self.dropout, self.training)


class StandardTransformer(nn.Module):
    """Token embedding, RoPE, pre-norm gated-attention blocks, final RMSNorm, untied LM head."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.rotary = Rotary(cfg.head_dim, cfg.block_size, cfg.rope_base)
        self.blocks = nn.ModuleList(StandardBlock(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        init_weights(self, cfg)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, worker_offset: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """logits (B, T, V) at every position; loss = mean CE over all positions. `worker_offset` is
        accepted for a uniform call signature and ignored (every position is updated)."""
        B, T = idx.shape
        check_length(self.cfg, T)
        rope = self.rotary.tables(T)
        x = self.tok_emb(idx)  # (B, T, C)
        for block in self.blocks:
            x = block(x, rope)
        logits = self.lm_head(self.norm(x))  # (B, T, V)
        return logits, next_token_loss(logits, targets)

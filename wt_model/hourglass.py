"""Hourglass (Nawrot et al. 2021, arXiv:2110.13711): a decoder whose middle layers run on a sequence shortened
by a factor k, here `worker_interval`.

Layout (the paper writes (a@1, b@k, a@1)): `hourglass_outer_layers` = a standard blocks at full resolution, then
b = n_layer - 2a blocks on the shortened sequence, then a blocks at full resolution again; at the default
n_layer=4, a=1 that is (1@1, 2@k, 1@1). `ModelConfig` rejects a split with no shortened layer. The valley, as
the authors' code (trax `HourglassLM`) builds it:
  1. shift the stream right by k-1 positions (zeros in front): shortened token j then summarises positions
     jk-k+1 .. jk (those before 0 are zeros);
  2. shorten by average pooling over each group of k (S = ceil(T / k) tokens: the shift fills the last group
     with positions before T, so no padding is needed and nothing from a later position enters);
  3. the shortened blocks (causal attention among the S tokens; RoPE at position jk, the newest position token
     j holds, so rotations count original positions as the paper's relative attention does), then an RMSNorm;
  4. linear upsampling (C -> k * C, reshaped to k rows): token j's k rows go to positions jk .. jk+k-1, all at or
     after jk, so no position receives anything from its future;
  5. an RMSNorm, and the result added to the stream saved before the shortening (the residual from the
     pre-layers).
Every block is the project's `StandardBlock` (gated attention, RoPE, RMSNorm, FFN). Training and evaluation are
the same pass, and the loss is the mean CE over every position. What differs from the paper (docs/peers.md):
the authors wrap the pooling and the upsampling in an attention block ("attention resampling") and use
relative attention; here the plain average pooling and linear upsampling are used, and RoPE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wt_model.config import ModelConfig
from wt_model.fused import dropout_add
from wt_model.layers import RMSNorm, Rotary, check_length, init_weights, next_token_loss
from wt_model.standard import StandardBlock


def shorten(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, T, C) -> (B, ceil(T / k), C): token j is the mean of x at positions jk-k+1 .. jk (zeros before 0)."""
    B, T, C = x.shape
    S = -(-T // k)
    shifted = F.pad(x, (0, 0, k - 1, 0))[:, : S * k]  # (B, S*k, C): shifted[p] = x[p - (k - 1)]; S*k <= T + k - 1
    return shifted.view(B, S, k, C).mean(dim=2)  # (B, S, C)


class HourglassTransformer(nn.Module):
    """Token embedding, full-resolution blocks, the shortened valley, full-resolution blocks, untied LM head."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        C, k, outer = cfg.n_embd, cfg.worker_interval, cfg.hourglass_outer_layers
        self.tok_emb = nn.Embedding(cfg.vocab_size, C)
        self.rotary = Rotary(cfg.head_dim, cfg.block_size, cfg.rope_base)
        self.pre = nn.ModuleList(StandardBlock(cfg) for _ in range(outer))
        self.shortened = nn.ModuleList(StandardBlock(cfg) for _ in range(cfg.n_layer - 2 * outer))
        self.shortened_norm = RMSNorm(C)
        self.upsample = nn.Linear(C, k * C, bias=False)  # token j -> its k rows at positions jk .. jk+k-1
        self.upsample_norm = RMSNorm(C)
        self.post = nn.ModuleList(StandardBlock(cfg) for _ in range(outer))
        self.norm = RMSNorm(C)
        self.lm_head = nn.Linear(C, cfg.vocab_size, bias=False)
        self.dropout = cfg.dropout
        init_weights(self, cfg)

    def valley(self, x: torch.Tensor) -> torch.Tensor:
        """The shortened path of the stream x (B, T, C): shift, pool, shortened blocks, upsample; (B, T, C), not
        yet added to x. Row p depends on x at positions <= p only."""
        B, T, C = x.shape
        k = self.cfg.worker_interval
        z = shorten(x, k)  # (B, S, C)
        S = z.shape[1]
        rope = self.rotary.cos[: S * k : k], self.rotary.sin[: S * k : k]  # (S, D): positions 0, k, 2k, ...
        for block in self.shortened:
            z = block(z, rope)
        up = self.upsample(self.shortened_norm(z))  # (B, S, k*C)
        return self.upsample_norm(up.view(B, S * k, C)[:, :T])  # (B, T, C): row jk+i from token j

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, worker_offset: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """logits (B, T, V) at every position; loss = mean CE over all positions. `worker_offset` is accepted
        for a uniform call signature and ignored."""
        B, T = idx.shape
        check_length(self.cfg, T)
        rope = self.rotary.tables(T)
        x = self.tok_emb(idx)  # (B, T, C)
        for block in self.pre:
            x = block(x, rope)
        x = dropout_add(x, self.valley(x), self.dropout, self.training)  # the residual from the pre-layers
        for block in self.post:
            x = block(x, rope)
        logits = self.lm_head(self.norm(x))  # (B, T, V)
        return logits, next_token_loss(logits, targets)

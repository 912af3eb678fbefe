"""Layers shared by every architecture: RMSNorm, RoPE, gated attention, FFN, the causal depthwise token mixer.

Both models build their blocks from these, so any difference in speed or loss between them comes from the
architecture (who is updated, who attends), never from one model getting a better-written layer.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention.flex_attention import BlockMask, flex_attention

from wt_model import archs
from wt_model.config import ModelConfig
from wt_model.dynamo import recompile_limit
from wt_model.fused import causal_depthwise_conv, dropout_attention, rms_norm, rope, use_cpu_kernels

RMS_EPS = 1e-6


def check_length(cfg: ModelConfig, T: int) -> None:
    """Refuse a sequence longer than block_size (the RoPE tables and masks stop there)."""
    if cfg.block_size < T:
        raise ValueError(f"sequence length {T} exceeds block_size={cfg.block_size}.")


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor | None:
    """Mean cross-entropy of logits (B, N, V) against targets (B, N); None without targets."""
    if targets is None:
        return None
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned per-channel weight and no bias."""

    def __init__(self, dim: int, eps: float = RMS_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)  # F.rms_norm, or its CPU kernel (see fused.py)


class Rotary(nn.Module):
    """RoPE tables for positions 0..block_size-1 (rotate-half convention, pairs (i, i + head_dim/2)).

    cos and sin are duplicated to the full head dim, and sin's first half is negated, so the rotation is
    x * cos + swap_halves(x) * sin."""

    def __init__(self, head_dim: int, block_size: int, base: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(block_size, dtype=torch.float32), inv_freq)  # (block_size, D/2)
        self.register_buffer("cos", torch.cat([angles.cos(), angles.cos()], dim=-1), persistent=False)
        self.register_buffer("sin", torch.cat([-angles.sin(), angles.sin()], dim=-1), persistent=False)

    def tables(self, positions: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin of shape (T, D) for the first `positions` positions or for an index tensor of them."""
        if isinstance(positions, int):
            return self.cos[:positions], self.sin[:positions]
        return self.cos[positions], self.sin[positions]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, H, T, D) by the angles of its true positions; cos, sin are (T, D) from `Rotary`."""
    return rope(x, cos, sin)


@dataclass(frozen=True)
class PrefixMask:
    """Which keys each query row attends when that is not the plain causal mask (the worker's mask): row i sees
    keys [0, n_keys[i]), a prefix, non-decreasing in i. One mask in the forms the kernels want, built once per
    forward from plain integers, so nothing here syncs with the device."""

    dense: torch.Tensor  # (L, S) bool, True where attention is allowed (sdpa, naive)
    n_keys: tuple[int, ...]  # per query row, as Python ints (the CPU dropout kernel's block bounds)
    block_mask: BlockMask | None = None  # FlexAttention's block-sparse form (attention="flex" on CUDA)


FLEX_GRAPHS = 64  # compiled FlexAttention graphs allowed: one per worker phase's mask (wt_model.dynamo)


@functools.cache
def _compiled_flex_attention():
    """flex_attention compiled on first use: without compile it runs an unfused reference that materialises
    every score. Under an outer torch.compile the plain function is used and compiled with its caller. Each
    worker phase's mask is its own graph (the phase is a constant of its mask_mod), so the calls raise Dynamo's
    recompile limit to FLEX_GRAPHS for themselves; past it Dynamo would fall back to the unfused reference."""
    compiled = torch.compile(flex_attention, dynamic=False)
    return recompile_limit(FLEX_GRAPHS)(compiled)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: PrefixMask | None,
    dropout_p: float,
    impl: str,
) -> torch.Tensor:
    """Softmax attention of q (B, H, L, D) over k, v (B, H, S, D); returns (B, H, L, D).

    mask None means the standard causal mask (L == S), which lets `sdpa` take its fused causal (flash) path.
    `naive` materialises the (B, H, L, S) scores, as the seed's baseline does. `flex` runs a `PrefixMask` with
    a block mask through FlexAttention (CUDA), and is otherwise `sdpa`; it takes no dropout (the caller passes
    0: FlexAttention has none on attention weights, see ModelConfig.attention).
    """
    L, S = q.shape[-2], k.shape[-2]
    if impl == "flex" and mask is not None and mask.block_mask is not None:
        run = flex_attention if torch.compiler.is_compiling() else _compiled_flex_attention()
        return run(q, k, v, block_mask=mask.block_mask)
    if impl in ("sdpa", "flex"):
        if dropout_p > 0 and use_cpu_kernels(q):
            # SDPA has no fused CPU kernel with dropout: it falls back to an unfused math path, slower than
            # `naive`. The same math (softmax, then dropout on the weights) in fewer passes, skipping fully
            # masked blocks as the fused kernel does:
            n_keys = list(range(1, L + 1)) if mask is None else list(mask.n_keys)  # row i sees [0, n_keys[i])
            return dropout_attention(q, k, v, n_keys, dropout_p)
        dense = None if mask is None else mask.dense
        return F.scaled_dot_product_attention(q, k, v, attn_mask=dense, dropout_p=dropout_p, is_causal=mask is None)
    dense = torch.ones(L, S, dtype=torch.bool, device=q.device).tril() if mask is None else mask.dense
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))  # (B, H, L, S)
    scores = scores.masked_fill(~dense, float("-inf"))
    weights = F.dropout(F.softmax(scores, dim=-1), p=dropout_p, training=dropout_p > 0)
    return weights @ v  # (B, H, L, D)


def attention_backend(cfg: ModelConfig, device_type: str, compiled: bool) -> str:
    """The attention kernels `cfg.attention` runs as on a device: "naive" (materialised scores), "sdpa" (torch's
    fused kernels), "sdpa+cpu-kernel" (the CPU dropout kernel of fused.dropout_attention: eager CPU training
    with dropout), "flex" (the worker's block-sparse FlexAttention, CUDA only; elsewhere it runs as sdpa)."""
    if cfg.attention == "naive":
        return "naive"
    if cfg.attention == "flex" and device_type == "cuda" and archs.get(cfg.arch).sparse:
        return "flex"
    if device_type == "cpu" and not compiled and cfg.dropout > 0 and cfg.attention == "sdpa":
        return "sdpa+cpu-kernel"
    return "sdpa"


class GatedAttention(nn.Module):
    """Multi-head attention whose output is gated elementwise by sigmoid(gate(x)) before the out projection.

    Queries and the gate come from `x_q`, keys and values from `x_kv`; the standard model passes the same
    rows for both, the worker model passes only its worker rows as `x_q`.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        C = cfg.n_embd
        self.n_head = cfg.n_head
        self.impl = cfg.attention
        self.dropout = cfg.dropout
        self.qg = nn.Linear(C, 2 * C, bias=False)  # query and gate in one matmul
        self.kv = nn.Linear(C, 2 * C, bias=False)  # key and value in one matmul
        self.out = nn.Linear(C, C, bias=False)

    def forward(
        self,
        x_q: torch.Tensor,
        x_kv: torch.Tensor,
        rope_q: tuple[torch.Tensor, torch.Tensor],
        rope_kv: tuple[torch.Tensor, torch.Tensor],
        mask: PrefixMask | None,
    ) -> torch.Tensor:
        B, L, C = x_q.shape
        S = x_kv.shape[1]
        H = self.n_head
        q, gate = self.qg(x_q).split(C, dim=-1)  # (B, L, C) each
        k, v = self.kv(x_kv).split(C, dim=-1)  # (B, S, C) each
        q = q.view(B, L, H, C // H).transpose(1, 2)  # (B, H, L, D)
        k = k.view(B, S, H, C // H).transpose(1, 2)  # (B, H, S, D)
        v = v.view(B, S, H, C // H).transpose(1, 2)  # (B, H, S, D)
        q = apply_rope(q, *rope_q)
        k = apply_rope(k, *rope_kv)
        dropout_p = self.dropout if self.training and self.impl != "flex" else 0.0  # flex: none on the weights
        y = attention(q, k, v, mask, dropout_p, self.impl)  # (B, H, L, D)
        y = y.transpose(1, 2).reshape(B, L, C)  # (B, L, C)
        return self.out(y * torch.sigmoid(gate))


class FeedForward(nn.Module):
    """Linear - GELU - Linear, with biases (the seed's FFN)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.up = nn.Linear(cfg.n_embd, cfg.ffn_width)
        self.down = nn.Linear(cfg.ffn_width, cfg.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class CausalDepthwiseConv(nn.Module):
    """Depthwise Conv1d over time with left padding, so position t sees t-kernel+1 .. t only.

    The parameters are an `nn.Conv1d`'s (weight (C, 1, kernel), bias (C,)), but the product is computed as
    `kernel` shifted multiply-adds in (B, T, C) layout (`fused.causal_depthwise_conv`): about 2x faster on CPU
    than transposing to channels-first for conv1d and back, and numerically the same sum.
    """

    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, groups=dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return causal_depthwise_conv(x, self.conv.weight[:, 0, :], self.conv.bias)  # (B, T, C)


def init_weights(model: nn.Module, cfg: ModelConfig) -> None:
    """Initialise `model` by `cfg.init`; call it once its modules are built.

    "torch": every module keeps what its own `reset_parameters()` drew at construction, as in the seed: Embedding
    N(0, 1); Linear and Conv1d weights kaiming-uniform (a=sqrt(5)), i.e. U(+-1/sqrt(fan_in)), biases
    U(+-1/sqrt(fan_in)); RMSNorm weights one. The worker model is sensitive to this choice.
    "nanogpt": Linear and Embedding weights N(0, 0.02), biases zero, residual output projections
    N(0, 0.02 / sqrt(2 * n_layer)); norm weights stay one and the worker's conv keeps PyTorch's default.
    The worker marker `worker_emb` is not a module's parameter: the worker model draws it itself, N(0, 0.02)
    under either scheme.
    """
    if cfg.init == "torch":
        return
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
    residual_std = 0.02 / math.sqrt(2 * cfg.n_layer)
    for name, param in model.named_parameters():
        if name.endswith("attn.out.weight") or name.endswith("ffn.down.weight"):
            nn.init.normal_(param, mean=0.0, std=residual_std)

"""A plain-PyTorch reference of the ORIGINAL repository's two models, on a state dict in the original's layout.

Written from the description of the original (/work/shared/seed/state-dict.md and its README), not from
wt_model nor from reference_worker.py (which describes OUR layout): the original's parameter names, its
fused projections as it stores them (token_kv_proj = [K; V], attn_proj = [Q; K; V]) and its interleaved RoPE,
pairs (2j, 2j+1) turned as complex numbers. The whole stream is computed every layer and a boolean worker mask
keeps the update at worker rows only (`torch.where`), with no gathers of worker rows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EPS = 1e-6
ROPE_BASE = 10000.0


def worker_mask(T: int, k: int) -> torch.Tensor:
    """(T,) bool: the original's workers, p % k == k - 1, and always the last position."""
    p = torch.arange(T)
    return (p % k == k - 1) | (p == T - 1)


def rms_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return weight * (x / torch.sqrt(torch.mean(x * x, dim=-1, keepdim=True) + EPS))


def interleaved_rope(x: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, D) with pair (2j, 2j+1) read as the complex number x_2j + i x_2j+1, multiplied by
    exp(i p theta_j), theta_j = base^(-2j/D), at position p."""
    T, D = x.shape[-2], x.shape[-1]
    theta = ROPE_BASE ** (-torch.arange(D // 2, dtype=torch.float64) * 2 / D)  # (D/2,)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * theta[None, :]  # (T, D/2)
    pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], D // 2, 2).contiguous())  # (B, H, T, D/2)
    turn = torch.polar(torch.ones_like(angle), angle).to(pairs.dtype)  # (T, D/2), in x's precision
    return torch.view_as_real(pairs * turn).reshape(x.shape)  # (B, H, T, D)


def token_mixer(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Depthwise Conv1d of x (B, T, C), padded by kernel-1 on both sides and cut to the first T outputs, so
    output t sees inputs t-kernel+1 .. t."""
    K = weight.shape[-1]
    y = F.conv1d(x.transpose(1, 2), weight, bias, padding=K - 1, groups=x.shape[-1])  # (B, C, T + K - 1)
    return y[..., : x.shape[1]].transpose(1, 2)  # (B, T, C)


def heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    B, T, C = x.shape
    return x.reshape(B, T, n_head, C // n_head).permute(0, 2, 1, 3)  # (B, H, T, D)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention of (B, H, T, D) tensors; the query at position p sees the keys at 0..p."""
    T, D = q.shape[-2], q.shape[-1]
    scores = torch.einsum("bhtd,bhsd->bhts", q, k) / math.sqrt(D)  # (B, H, T, T)
    sees = torch.arange(T)[None, :] <= torch.arange(T)[:, None]  # (T query, T key)
    weights = torch.softmax(torch.where(sees, scores, torch.full_like(scores, float("-inf"))), dim=-1)
    return torch.einsum("bhts,bhsd->bhtd", weights, v)  # (B, H, T, D)


def original_forward(sd: dict[str, torch.Tensor], idx: torch.Tensor, *, n_head: int, worker_interval: int = 4):
    """Logits of the original model whose state dict is `sd`: (B, W, V) at the worker rows for the worker model
    (it has `worker_type_emb`), (B, T, V) at every row for the standard model."""
    worker = "worker_type_emb" in sd
    B, T = idx.shape
    C = sd["token_embedding.weight"].shape[1]
    n_layer = 1 + max(int(name.split(".")[1]) for name in sd if name.startswith("layers."))
    is_worker = worker_mask(T, worker_interval) if worker else torch.ones(T, dtype=torch.bool)
    rows = is_worker[None, :, None]  # (1, T, 1)

    x = F.embedding(idx, sd["token_embedding.weight"])  # (B, T, C)
    if worker:
        x = torch.where(rows, x + sd["worker_type_emb"], x)
    for i in range(n_layer):
        p = f"layers.{i}."
        if worker:
            h = rms_norm(token_mixer(x, sd[p + "token_mixer.weight"], sd[p + "token_mixer.bias"]), sd[p + "ln1.weight"])
            kv = F.linear(h, sd[p + "token_kv_proj.weight"])  # (B, T, 2C): K, then V
            k, v = kv[..., :C], kv[..., C:]
            q = F.linear(h, sd[p + "worker_q_proj.weight"])  # kept at worker rows only, below
            gate = F.linear(h, sd[p + "worker_gate_proj.weight"])
        else:
            h = rms_norm(x, sd[p + "ln1.weight"])
            qkv = F.linear(h, sd[p + "attn_proj.weight"])  # (B, T, 3C): Q, K, V
            q, k, v = qkv[..., :C], qkv[..., C : 2 * C], qkv[..., 2 * C :]
            gate = F.linear(h, sd[p + "gate_proj.weight"])
        y = attend(interleaved_rope(heads(q, n_head)), interleaved_rope(heads(k, n_head)), heads(v, n_head))
        y = y.permute(0, 2, 1, 3).reshape(B, T, C) * torch.sigmoid(gate)  # (B, T, C)
        x = torch.where(rows, x + F.linear(y, sd[p + "out_proj.weight"]), x)
        hidden = F.gelu(F.linear(rms_norm(x, sd[p + "ln2.weight"]), sd[p + "ffn.0.weight"], sd[p + "ffn.0.bias"]))
        x = torch.where(rows, x + F.linear(hidden, sd[p + "ffn.2.weight"], sd[p + "ffn.2.bias"]), x)
    logits = F.linear(rms_norm(x, sd["ln_f.weight"]), sd["lm_head.weight"])  # (B, T, V)
    return logits[:, is_worker]

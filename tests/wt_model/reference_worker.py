"""A plain-PyTorch reference of both models, written from their description rather than from wt_model's code.

No fused ops and no index tricks: a boolean worker mask over all T positions, attention for every row under
the causal mask, and each block computes an update for the whole stream and keeps it at worker rows only
(`torch.where`), the "full clone/update" of the seed. The weights are read by name from a built model's
state_dict, so the reference and the model compute with the same numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from wt_model import ModelConfig

EPS = 1e-6


def worker_mask(T: int, k: int, offset: int) -> torch.Tensor:
    """(T,) bool: positions p with p % k == (k - 1 - offset) % k, and always the last one."""
    p = torch.arange(T)
    return (p % k == (k - 1 - offset) % k) | (p == T - 1)


def rms_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * weight


def rope(x: torch.Tensor, base: float) -> torch.Tensor:
    """Rotate x (B, H, T, D) by positions 0..T-1: pairs (i, i + D/2) turn by angle p * base^(-2i/D)."""
    T, D = x.shape[-2], x.shape[-1]
    freq = base ** (-torch.arange(0, D // 2, dtype=torch.float32) * 2 / D)  # (D/2,)
    angle = torch.arange(T, dtype=torch.float32)[:, None] * freq[None, :]  # (T, D/2)
    cos, sin = torch.cat([angle.cos()] * 2, -1), torch.cat([angle.sin()] * 2, -1)  # (T, D)
    first, second = x[..., : D // 2], x[..., D // 2 :]
    rotated_half = torch.cat([-second, first], dim=-1)
    return x * cos + rotated_half * sin


def causal_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Depthwise conv over time of x (B, T, C), weight (C, 1, K), left-padded so t sees t-K+1 .. t."""
    K = weight.shape[-1]
    xc = F.pad(x.transpose(1, 2), (K - 1, 0))  # (B, C, K-1+T)
    return F.conv1d(xc, weight, bias, groups=x.shape[-1]).transpose(1, 2)  # (B, T, C)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Materialised softmax attention of (B, H, T, D) tensors; row i sees positions j <= i."""
    T = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T, T)
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ v


def reference_forward(
    params: dict[str, torch.Tensor],
    cfg: ModelConfig,
    idx: torch.Tensor,
    targets: torch.Tensor,
    worker_offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits at the worker rows (B, W, V), mean CE there) of the model `cfg.arch` names, with `params` its
    state_dict. The standard model is the case where every row is a worker and there is no conv or marker;
    standard-mixer (the ablation) is the standard model whose attention reads the token mixer's output."""
    worker = cfg.arch == "worker"
    mixer = cfg.arch in ("worker", "standard-mixer")
    B, T = idx.shape
    C, H = cfg.n_embd, cfg.n_head
    is_worker = worker_mask(T, cfg.worker_interval, worker_offset) if worker else torch.ones(T, dtype=torch.bool)
    keep = is_worker[None, :, None]  # (1, T, 1)

    x = params["tok_emb.weight"][idx]  # (B, T, C)
    if worker:
        x = torch.where(keep, x + params["worker_emb"], x)
    for layer in range(cfg.n_layer):
        prefix = f"blocks.{layer}."
        w = {name.removeprefix(prefix): p for name, p in params.items() if name.startswith(prefix)}
        mixed = causal_conv(x, w["mixer.conv.weight"], w["mixer.conv.bias"]) if mixer else x
        h = rms_norm(mixed, w["norm1.weight"])  # (B, T, C), every row
        q, gate = (h @ w["attn.qg.weight"].T).split(C, dim=-1)
        k, v = (h @ w["attn.kv.weight"].T).split(C, dim=-1)
        q, k, v = (t.reshape(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        y = causal_attention(rope(q, cfg.rope_base), rope(k, cfg.rope_base), v)
        y = y.transpose(1, 2).reshape(B, T, C) * torch.sigmoid(gate)
        updated = x + y @ w["attn.out.weight"].T
        hidden = F.gelu(rms_norm(updated, w["norm2.weight"]) @ w["ffn.up.weight"].T + w["ffn.up.bias"])
        updated = updated + hidden @ w["ffn.down.weight"].T + w["ffn.down.bias"]
        x = torch.where(keep, updated, x)  # non-worker rows keep their token embedding
    logits = rms_norm(x, params["norm.weight"]) @ params["lm_head.weight"].T  # (B, T, V)
    logits = logits[:, is_worker]  # (B, W, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets[:, is_worker].reshape(-1))
    return logits, loss

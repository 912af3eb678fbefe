"""Hand-written forward/backward pairs for the elementwise-heavy parts of both models (the CPU training path).

On a CPU, a training step of these small models spends about as long in elementwise passes over activations
(norm, RoPE, dropout, masking, softmax) as in matmuls. Autograd through the composite ops makes many passes and
keeps a temporary per op; each Function here computes the same math in fewer passes and saves less for the
backward. Each is checked against its plain-autograd reference in tests/wt_model/test_fused.py.

Dropout masks come from `torch.rand(...) >= p` (keep probability 1 - p up to float32 resolution, 2^-24), drawn
from torch's global generator like `F.dropout`'s; it is about twice as fast as `bernoulli_` on CPUs where
PyTorch has no vectorised Bernoulli sampler.

One switch, `use_cpu_kernels(x)`, decides where these Functions run: eager CPU only. On CUDA they would be
many small kernel launches, and under `torch.compile` they are graph breaks (their `out=` writes into strided
views) with nothing to gain, since the compiler fuses the plain ops itself. Everywhere else each public
function below computes the same math with plain differentiable ops, which the compiler captures whole and
CUDA graphs replay. `layers.attention` calls `dropout_attention` only behind the same switch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def use_cpu_kernels(x: torch.Tensor) -> bool:
    """True where the hand-written Functions run: eager mode on a CPU tensor; False on CUDA and under compile."""
    return x.device.type == "cpu" and not torch.compiler.is_compiling()


class _RMSNorm(torch.autograd.Function):
    """y = x * rsqrt(mean(x^2, -1) + eps) * weight; ~9 passes over x for forward + backward instead of ~20."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        C = x.shape[-1]
        sumsq = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_()  # (..., 1), one pass, no temporary
        rstd = sumsq.div_(C).add_(eps).rsqrt_()  # (..., 1)
        x_hat = x * rstd
        ctx.save_for_backward(x_hat, rstd, weight)
        return x_hat * weight

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x_hat, rstd, weight = ctx.saved_tensors
        C = x_hat.shape[-1]
        grad_weight = (grad * x_hat).reshape(-1, C).sum(0)  # (C,)
        g = grad * weight  # (..., C): the gradient w.r.t. x_hat
        dot = (g * x_hat).sum(-1, keepdim=True).div_(C)  # (..., 1)
        grad_x = g.addcmul_(x_hat, dot, value=-1.0).mul_(rstd)  # rstd * (g - x_hat * mean(g * x_hat))
        return grad_x, grad_weight, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm of x (..., C) with a per-channel weight (C,)."""
    if use_cpu_kernels(x):
        return _RMSNorm.apply(x, weight, eps)  # autograd through F.rms_norm is slow on CPU
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = x * cos + rotate_half(x) * sin, with sin's first half negated (see `Rotary`): two passes."""
    half = x.shape[-1] // 2
    torch.mul(x, cos, out=out)
    out[..., :half].addcmul_(x[..., half:], sin[..., :half])
    out[..., half:].addcmul_(x[..., :half], sin[..., half:])
    return out


class _Rope(torch.autograd.Function):
    """RoPE rotation of x (B, H, T, D); the gradient is the rotation by the opposite angles (a rotation's
    transpose), so only the tables are saved. The output is contiguous (B, H, T, D), the layout attention's
    batched matmuls want; the gradient is written in x's own memory layout, so the views that made x from a
    projection's output (B, T, H, D) need no copy on the way back."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(cos, sin)
        return _rotate(x, cos, sin, torch.empty(x.shape, dtype=x.dtype, device=x.device))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        cos, sin = ctx.saved_tensors
        B, H, T, D = grad.shape
        out = torch.empty(B, T, H, D, dtype=grad.dtype, device=grad.device).transpose(1, 2)  # (B, H, T, D)
        return _rotate(grad, cos, -sin, out), None, None


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, H, T, D) by cos, sin (T, D) (sin with its first half negated)."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    if use_cpu_kernels(x):
        return _Rope.apply(x, cos, sin)
    half = x.shape[-1] // 2
    return x * cos + torch.cat([x[..., half:], x[..., :half]], dim=-1) * sin  # swapped halves times signed sin


class _DropoutAdd(torch.autograd.Function):
    """x + dropout(y) in one pass forward and one backward; saves the scaled keep mask {0, 1/(1-p)}."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor, p: float) -> torch.Tensor:
        mask = torch.rand_like(y).ge_(p).mul_(1.0 / (1.0 - p))  # in place: 1/(1-p) where kept, 0 where dropped
        ctx.save_for_backward(mask)
        return torch.addcmul(x, y, mask)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (mask,) = ctx.saved_tensors
        return grad, grad * mask, None


def dropout_add(x: torch.Tensor, y: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """x + F.dropout(y, p, training), the residual add of a dropped-out branch (fused on eager CPU; elsewhere
    F.dropout, whose fused kernel also keeps the mask in full precision under autocast)."""
    if not training or p == 0.0:
        return x + y
    if use_cpu_kernels(y):
        return _DropoutAdd.apply(x, y, p)
    return x + F.dropout(y, p, training=True)


class _CausalDepthwiseConv(torch.autograd.Function):
    """y[:, t] = bias + sum_j weight[:, j] * x[:, t - (K - 1) + j] over x (B, T, C), zero before position 0:
    K multiply-adds on shifted slices without a padded copy; the backward mirrors them. The per-tap weight
    gradients are reductions over (B, T), one pass each."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        T, K = x.shape[1], weight.shape[1]
        taps = weight.t().contiguous()  # (K, C); tap j multiplies position t - (K - 1) + j
        y = torch.addcmul(bias, x, taps[K - 1])  # (B, T, C)
        for shift in range(1, min(K, T)):
            y[:, shift:].addcmul_(x[:, : T - shift], taps[K - 1 - shift])
        ctx.save_for_backward(x, taps)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, taps = ctx.saved_tensors
        T, K = x.shape[1], taps.shape[0]
        grad_x = grad * taps[K - 1]
        grad_taps = torch.zeros_like(taps)  # taps that reach past position 0 stay zero when T < K
        grad_taps[K - 1] = (grad * x).sum((0, 1))
        for shift in range(1, min(K, T)):
            grad_x[:, : T - shift].addcmul_(grad[:, shift:], taps[K - 1 - shift])
            grad_taps[K - 1 - shift] = (grad[:, shift:] * x[:, : T - shift]).sum((0, 1))
        return grad_x, grad_taps.t(), grad.sum((0, 1))


def causal_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Causal depthwise convolution of x (B, T, C) with weight (C, K) and bias (C,)."""
    if use_cpu_kernels(x):
        return _CausalDepthwiseConv.apply(x, weight, bias)
    T, K = x.shape[1], weight.shape[1]
    padded = F.pad(x, (0, 0, K - 1, 0))  # (B, K - 1 + T, C): zeros before position 0
    y = bias + padded[:, K - 1 :] * weight[:, K - 1]  # (B, T, C); tap j multiplies position t - (K - 1) + j
    for j in range(K - 1):
        y = y + padded[:, j : j + T] * weight[:, j]
    return y


class _DropoutAttention(torch.autograd.Function):
    """Softmax attention with dropout on the attention weights, in blocks of query rows.

    Row i of q attends keys [0, n_keys[i]) (n_keys non-decreasing: causal and worker masks both are). A block
    of rows only multiplies the keys its last row sees, so the fully masked upper-right blocks are skipped,
    as SDPA's fused causal kernel skips them; the blocks are small enough for their scores to stay in cache
    across the elementwise passes. The math is that of `naive` with dropout.
    """

    @staticmethod
    def forward(ctx, q, k, v, n_keys: list[int], p: float, block: int):
        B, H, L, D = q.shape
        S = k.shape[2]
        q3 = (q * (1.0 / math.sqrt(D))).reshape(B * H, L, D)  # the score scale folded into q
        k3 = k.reshape(B * H, S, D)
        v3 = torch.mul(v, 1.0 / (1.0 - p), out=v.new_empty(v.shape)).view(B * H, S, -1)  # dropout's 1/(1-p)
        key_limit = torch.tensor(n_keys, device=q.device)  # (L,)
        y = v3.new_empty(B * H, L, v3.shape[-1])
        saved = []
        for a in range(0, L, block):
            b = min(a + block, L)
            n, lo = n_keys[b - 1], n_keys[a]  # keys of the block's last row; columns >= lo are masked somewhere
            s = torch.bmm(q3[:, a:b], k3[:, :n].transpose(1, 2))  # (BH, l, n)
            if lo < n:
                masked = torch.arange(lo, n, device=q.device) >= key_limit[a:b, None]  # (l, n - lo)
                s[:, :, lo:].masked_fill_(masked, float("-inf"))
            weights = torch.softmax(s, dim=-1)  # (BH, l, n)
            kept = torch.rand_like(weights).ge_(p).mul_(weights)  # in place: weights * keep mask
            y[:, a:b] = torch.bmm(kept, v3[:, :n])
            saved += [weights, kept]
        ctx.save_for_backward(q3, k3, v3, *saved)
        ctx.n_keys, ctx.p, ctx.block = n_keys, p, block
        return y.view(B, H, L, -1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        q3, k3, v3, *saved = ctx.saved_tensors
        n_keys, p, block = ctx.n_keys, ctx.p, ctx.block
        B, H, L, _ = grad.shape
        D = q3.shape[-1]
        dy = grad.reshape(B * H, L, -1)
        dq, dk, dv = torch.empty_like(q3), torch.zeros_like(k3), torch.zeros_like(v3)
        for i, a in enumerate(range(0, L, block)):
            b = min(a + block, L)
            n = n_keys[b - 1]
            weights, kept = saved[2 * i], saved[2 * i + 1]
            # With y = (P * keep) @ v3: dS = P * (dP - rowsum(P * dP)), dP = keep * (dy @ v3^T), so
            # dS = kept * g - P * rowsum(kept * g) with g = dy @ v3^T. Masked entries have P = 0, hence dS = 0.
            g = torch.bmm(dy[:, a:b], v3[:, :n].transpose(1, 2)).mul_(kept)  # (BH, l, n)
            g.addcmul_(weights, g.sum(-1, keepdim=True), value=-1.0)  # dS, in place
            dq[:, a:b] = torch.bmm(g, k3[:, :n])
            dk[:, :n].baddbmm_(g.transpose(1, 2), q3[:, a:b])
            dv[:, :n].baddbmm_(kept.transpose(1, 2), dy[:, a:b])
        dq.mul_(1.0 / math.sqrt(D))
        dv.mul_(1.0 / (1.0 - p))
        return dq.view(B, H, L, D), dk.view(B, H, -1, D), dv.view(B, H, *v3.shape[1:]), None, None, None


def dropout_attention(q, k, v, n_keys: list[int], p: float, block_elems: int = 1 << 20) -> torch.Tensor:
    """Attention of q (B, H, L, D) over k, v (B, H, S, D), row i seeing keys [0, n_keys[i]), with dropout p > 0
    on the weights. Blocks of about `block_elems` scores (4 MiB in fp32)."""
    B, H, L, _ = q.shape
    block = max(16, min(L, block_elems // max(1, B * H * k.shape[2])))
    return _DropoutAttention.apply(q, k, v, n_keys, p, block)

"""The hand-written Functions in wt_model.fused against plain-autograd references, forward and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from wt_model.fused import causal_depthwise_conv, dropout_add, dropout_attention, rms_norm, rope
from wt_model.layers import Rotary


def _grads(fn, *inputs):
    """Output and input gradients of fn under a fixed random upstream gradient."""
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*inputs)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(5), dtype=out.dtype)
    out.backward(upstream)
    return out.detach(), [t.grad for t in inputs]


def _assert_same(fused, reference, *inputs, atol=1e-5):
    out, grads = _grads(fused, *inputs)
    out_ref, grads_ref = _grads(reference, *inputs)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=atol)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, rtol=0, atol=atol)


def test_rms_norm_matches_torch():
    x, w = torch.randn(3, 7, 16), torch.rand(16) + 0.5
    _assert_same(lambda x, w: rms_norm(x, w, 1e-6), lambda x, w: F.rms_norm(x, (16,), w, 1e-6), x, w)


def _rope_reference(x, cos, sin):
    """The textbook rotate-half RoPE with the unsigned sin table."""
    half = x.shape[-1] // 2
    sin = torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)  # undo the table's sign fold
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def test_rope_matches_rotate_half_and_keeps_norms():
    B, T, H, D = 2, 9, 3, 8
    cos, sin = Rotary(D, 16, 10000.0).tables(T)
    x = torch.randn(B, T, H, D).transpose(1, 2)  # (B, H, T, D), the non-contiguous view the model passes
    _assert_same(lambda x: rope(x, cos, sin), lambda x: _rope_reference(x, cos, sin), x)
    torch.testing.assert_close(rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1))  # a rotation


def test_dropout_add_is_dropout():
    x, y = torch.randn(4, 50, 64), torch.randn(4, 50, 64)
    torch.manual_seed(0)
    out = dropout_add(x, y, 0.25, training=True)
    branch = out - x
    dropped = branch.abs() < 1e-6
    assert 0.2 < dropped.float().mean() < 0.3
    torch.testing.assert_close(branch[~dropped], y[~dropped] / 0.75)
    assert torch.equal(dropout_add(x, y, 0.25, training=False), x + y)
    # Gradient: the same mask scales dL/dy (same seed, same mask).
    y.requires_grad_(True)
    torch.manual_seed(0)
    dropout_add(x, y, 0.25, training=True).sum().backward()
    torch.testing.assert_close(y.grad, (~dropped).float() / 0.75)


def _naive(q, k, v, n_keys):
    S = k.shape[-2]
    mask = torch.arange(S)[None, :] < torch.tensor(n_keys)[:, None]  # (L, S)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    weights = F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return weights @ v


@pytest.mark.parametrize(
    ("L", "S", "n_keys", "block_elems"),
    [
        (20, 20, list(range(1, 21)), 1 << 20),  # causal, one block
        (20, 20, list(range(1, 21)), 6 * 20 * 5),  # causal, blocks of 16 rows (the minimum)
        (37, 37, list(range(1, 38)), 1),  # causal, ragged last block
        (5, 19, [4, 8, 12, 16, 19], 1),  # worker rows 3, 7, 11, 15 and the last, T = 19
        (18, 70, [*range(4, 70, 4), 70], 1),  # worker rows 3, 7, ..., 67 and the last, T = 70: two blocks
    ],
)
def test_dropout_attention_without_drops_is_naive(L, S, n_keys, block_elems):
    """p -> 0 (kept with probability ~1): the blocked, key-skipping path is exactly masked softmax attention."""
    B, H, D = 2, 3, 8
    q, k, v = torch.randn(B, H, L, D), torch.randn(B, H, S, D), torch.randn(B, H, S, D)
    _assert_same(
        lambda q, k, v: dropout_attention(q, k, v, n_keys, 1e-9, block_elems=block_elems),
        lambda q, k, v: _naive(q, k, v, n_keys),
        q,
        k,
        v,
    )


def test_dropout_attention_drops_attention_weights():
    """With v = identity, the output rows are the dropped-out weights: each is 0 or the weight / (1 - p)."""
    B, H, L, p = 2, 2, 64, 0.3
    n_keys = list(range(1, L + 1))
    q, k = torch.randn(B, H, L, 8), torch.randn(B, H, L, 8)
    v = torch.eye(L).expand(B, H, L, L)  # (B, H, S, D=S)
    torch.manual_seed(0)
    dropped_weights = dropout_attention(q, k, v, n_keys, p, block_elems=1)  # blocks of 16 rows
    weights = _naive(q, k, v, n_keys)
    kept = dropped_weights != 0
    torch.testing.assert_close(dropped_weights[kept], weights[kept] / (1 - p))
    assert not kept[..., torch.ones(L, L, dtype=torch.bool).triu(1)].any()  # causal
    allowed = torch.ones(L, L).tril().sum() * B * H
    assert abs(kept.sum() / allowed - (1 - p)) < 0.03


def test_dropout_attention_gradients_match_finite_differences():
    """Same seed per call, so the same masks: the hand-written backward is the forward's gradient. One head of
    width 2 (heads are independent, and every input element costs two forward passes here)."""
    n_keys = sorted(torch.randint(1, 41, (20,)).tolist())  # non-decreasing prefixes, as worker rows give
    n_keys[-1] = 40
    q, k, v = (torch.randn(1, 1, n, 2, dtype=torch.float64) for n in (20, 40, 40))

    def seeded(q, k, v):
        torch.manual_seed(0)
        return dropout_attention(q, k, v, n_keys, 0.4, block_elems=1)  # blocks of 16 and 4 rows

    inputs = [t.requires_grad_(True) for t in (q, k, v)]
    assert torch.autograd.gradcheck(seeded, inputs)


def _conv_reference(x, weight, bias):
    """nn.functional.conv1d, channels-first, left padding K - 1."""
    K = weight.shape[1]
    y = F.conv1d(F.pad(x.transpose(1, 2), (K - 1, 0)), weight[:, None, :], bias, groups=x.shape[-1])
    return y.transpose(1, 2)


@pytest.mark.parametrize(("T", "K"), [(11, 3), (2, 3), (1, 3), (9, 1), (7, 5)])
def test_causal_depthwise_conv_matches_conv1d(T, K):
    x, weight, bias = torch.randn(2, T, 6), torch.randn(6, K), torch.randn(6)
    _assert_same(causal_depthwise_conv, _conv_reference, x, weight, bias)

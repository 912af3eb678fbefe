"""Analytic parameter counts and FLOPs of every architecture, from its traits in the registry (wt_model.archs).

FLOP convention (the study's `flops` column, the bench's utilisation and the FlopCounterMode test all use it):
- a multiply-add is 2 FLOPs; only matmuls and the worker's convolution are counted, the operations that
  `torch.utils.flop_counter.FlopCounterMode` counts. Not counted (as the counter does not count them):
  elementwise work (RMSNorm, RoPE, GELU, sigmoid gate, softmax, dropout, residual adds, biases), the
  embedding lookup, gathers and scatters, and the cross-entropy.
- attention is counted as the kernels compute it: the full L x S score matmul and the full L x S mixing
  matmul, 2 * L * S * head_dim FLOPs each per head, regardless of the causal mask (neither the naive path nor
  SDPA's kernels skip masked blocks in what the counter sees). Standard: L = S = T. Worker: L = W workers,
  S = T. FlopCounterMode has no formula for SDPA's fused CPU kernel (it reports 0 for it); the test registers
  torch's own SDPA formula for that kernel, which counts the same full L x S products. SDPA's fused causal
  kernels skip fully masked key blocks, and so does `sdpa`'s CPU training path with dropout
  (`fused.dropout_attention`); both are still counted at the full L x S, like the naive path.
- a sparse architecture (the worker model) is charged only for what it computes: Q, gate, output projection,
  FFN and LM head on the W worker rows; K and V on all T rows. A token mixer costs 2 * kernel FLOPs per
  channel per position, on all T rows.
- a training step is forward + backward = 3x the forward FLOPs (the backward of every matmul computes the
  input gradient and the weight gradient, each as large as the forward product).
- "per token" means per input position of the sequence: the sequence total divided by T.
W is the number of workers at phase 0 (`n_workers`), which the training loss and generation use.
"""

from __future__ import annotations

from dataclasses import dataclass

from wt_model import archs
from wt_model.config import ModelConfig
from wt_model.positions import worker_position_list


@dataclass(frozen=True)
class ParamCounts:
    total: int  # every parameter
    non_embedding: int  # total minus the two vocabulary matrices (token embedding and LM head)


def count_params(cfg: ModelConfig) -> ParamCounts:
    """Exact parameter counts of `build_model(cfg)` (tested against sum(p.numel()))."""
    C, F, V = cfg.n_embd, cfg.ffn_width, cfg.vocab_size
    attention = 5 * C * C  # q, gate, k, v, out; no biases
    ffn = C * F + F + F * C + C  # with biases
    block = C + attention + C + ffn  # two RMSNorm weights
    arch = archs.get(cfg.arch)
    if arch.mixer:
        block += C * cfg.conv_kernel + C  # depthwise conv weight and bias
    vocab = 2 * V * C  # token embedding + untied LM head
    total = cfg.n_layer * block + vocab + C  # final RMSNorm
    if arch.marker:
        total += C  # worker-type embedding
    return ParamCounts(total=total, non_embedding=total - vocab)


def n_workers(cfg: ModelConfig, seq_len: int, offset: int = 0) -> int:
    """Rows that get queries at phase `offset` in a sequence of `seq_len`: every row, or the workers (sparse).
    They are also the supervised targets of a training sequence: the training loss is taken at these rows."""
    if not archs.get(cfg.arch).sparse:
        return seq_len
    return len(worker_position_list(seq_len, cfg.worker_interval, offset))


def forward_flops_per_sequence(cfg: ModelConfig, seq_len: int) -> float:
    """Forward FLOPs of one sequence of length `seq_len` (see the module docstring for the convention)."""
    _check_seq_len(cfg, seq_len)
    T, C, F, V = seq_len, cfg.n_embd, cfg.ffn_width, cfg.vocab_size
    W = n_workers(cfg, T)  # rows that get queries, gate, output projection, FFN and LM head
    per_layer = (
        2 * T * C * (2 * C)  # keys and values on every row
        + 2 * W * C * (2 * C)  # queries and gate
        + 2 * W * C * C  # output projection
        + 2 * 2 * W * T * C  # scores (W x T) and mixing, summed over heads
        + 2 * 2 * W * C * F  # FFN up and down
    )
    if archs.get(cfg.arch).mixer:
        per_layer += 2 * T * C * cfg.conv_kernel  # depthwise token mixer
    return float(cfg.n_layer * per_layer + 2 * W * C * V)


def forward_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Forward FLOPs per input position of a sequence of length `seq_len`."""
    return forward_flops_per_sequence(cfg, seq_len) / seq_len


def training_flops_per_sequence(cfg: ModelConfig, seq_len: int) -> float:
    """Forward + backward FLOPs of one sequence: 3x the forward."""
    return 3.0 * forward_flops_per_sequence(cfg, seq_len)


def training_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Forward + backward FLOPs per input position: 3x the forward."""
    return 3.0 * forward_flops_per_token(cfg, seq_len)


def _check_seq_len(cfg: ModelConfig, seq_len: int) -> None:
    if not (isinstance(seq_len, int) and 1 <= seq_len <= cfg.block_size):
        raise ValueError(f"seq_len={seq_len!r} is invalid: expected an integer in [1, {cfg.block_size}].")

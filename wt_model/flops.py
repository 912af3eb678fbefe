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

The peers (docs/peers.md) are counted by their own functions (`_PEER_FORWARD`), with the same convention:
- hourglass: its full-resolution layers on T rows, its shortened layers on S = ceil(T / k) rows (attention
  S x S), the linear upsampling (S rows, C -> k * C) and the LM head on T rows; the average pooling and the
  shift are not matmuls.
- mod: a routed block runs its router (C -> 1) and the causal predictor (C -> h -> 1, h = `predictor_width`) on
  all T rows, and attention and the FFN on the `routed_capacity` chosen rows only (attention cap x cap); a
  block that is not routed is a standard block. This is the training forward, the capacity actually computed.
  Its training step is 3x that minus the predictor's first input gradient, which is never computed (the
  predictor reads a stop-gradient copy of the stream). Evaluation decides per token with the predictor and
  computes every row of a routed block under a mask (fixed shapes): the standard model's cost plus the routers
  and predictors (`mod_evaluation_flops_per_sequence`).
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


def routed_capacity(seq_len: int, k: int) -> int:
    """Tokens a Mixture-of-Depths block routes through itself in a training sequence: ceil(T / k), as many as
    the worker model has workers at phase 0 (`n_workers`)."""
    return -(-seq_len // k)


def predictor_width(n_embd: int) -> int:
    """Hidden width of Mixture-of-Depths' causal predictor: small beside the block it decides for."""
    return max(1, n_embd // 8)


def mod_routed_blocks(cfg: ModelConfig) -> list[bool]:
    """Per block of a Mixture-of-Depths model, whether it is routed: every mod_route_every-th, the first block
    standard whenever mod_route_every > 1 (every token is updated by one block before any routing)."""
    return [(i + 1) % cfg.mod_route_every == 0 for i in range(cfg.n_layer)]


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
    if cfg.arch == "hourglass":
        total += cfg.worker_interval * C * C + 2 * C  # linear upsampling (no bias), two RMSNorms around it
    if cfg.arch == "mod":
        h = predictor_width(C)
        router_and_predictor = C + (C * h + h + h + 1)  # router (no bias); predictor C -> h -> 1 with biases
        total += sum(mod_routed_blocks(cfg)) * router_and_predictor
    return ParamCounts(total=total, non_embedding=total - vocab)


def n_workers(cfg: ModelConfig, seq_len: int, offset: int = 0) -> int:
    """Rows that get queries at phase `offset` in a sequence of `seq_len`: every row, or the workers (sparse).
    They are also the supervised targets of a training sequence: the training loss is taken at these rows."""
    if not archs.get(cfg.arch).sparse:
        return seq_len
    return len(worker_position_list(seq_len, cfg.worker_interval, offset))


def _block_flops(W: int, T: int, C: int, F: int) -> int:
    """Forward FLOPs of one gated-attention block whose W query rows attend over T rows (keys and values on T)."""
    return (
        2 * T * C * (2 * C)  # keys and values on every row
        + 2 * W * C * (2 * C)  # queries and gate
        + 2 * W * C * C  # output projection
        + 2 * 2 * W * T * C  # scores (W x T) and mixing, summed over heads
        + 2 * 2 * W * C * F  # FFN up and down
    )


def forward_flops_per_sequence(cfg: ModelConfig, seq_len: int) -> float:
    """Forward FLOPs of one sequence of length `seq_len` (see the module docstring for the convention)."""
    _check_seq_len(cfg, seq_len)
    if cfg.arch in _PEER_FORWARD:
        return float(_PEER_FORWARD[cfg.arch](cfg, seq_len))
    T, C, F, V = seq_len, cfg.n_embd, cfg.ffn_width, cfg.vocab_size
    W = n_workers(cfg, T)  # rows that get queries, gate, output projection, FFN and LM head
    per_layer = _block_flops(W, T, C, F)
    if archs.get(cfg.arch).mixer:
        per_layer += 2 * T * C * cfg.conv_kernel  # depthwise token mixer
    return float(cfg.n_layer * per_layer + 2 * W * C * V)


def _hourglass_forward(cfg: ModelConfig, T: int) -> int:
    C, F, k = cfg.n_embd, cfg.ffn_width, cfg.worker_interval
    S = -(-T // k)  # shortened tokens
    n_full = 2 * cfg.hourglass_outer_layers
    shortened = cfg.n_layer - n_full
    upsampling = 2 * S * C * (k * C)
    return (
        n_full * _block_flops(T, T, C, F)
        + shortened * _block_flops(S, S, C, F)
        + upsampling
        + 2 * T * C * cfg.vocab_size
    )


def _mod_gates(cfg: ModelConfig, T: int) -> int:
    """Router and predictor forward FLOPs of one routed block, on all T rows."""
    C, h = cfg.n_embd, predictor_width(cfg.n_embd)
    return 2 * T * C + 2 * T * C * h + 2 * T * h


def _mod_forward(cfg: ModelConfig, T: int) -> int:
    C, F = cfg.n_embd, cfg.ffn_width
    cap = routed_capacity(T, cfg.worker_interval)
    routed = _block_flops(cap, cap, C, F) + _mod_gates(cfg, T)
    total = sum(routed if is_routed else _block_flops(T, T, C, F) for is_routed in mod_routed_blocks(cfg))
    return total + 2 * T * C * cfg.vocab_size


def mod_evaluation_flops_per_sequence(cfg: ModelConfig, seq_len: int) -> float:
    """Forward FLOPs of a Mixture-of-Depths evaluation pass: every row of every block (the chosen tokens are a
    mask, so the shapes are fixed), plus the routers and predictors of the routed blocks."""
    _check_seq_len(cfg, seq_len)
    T, C = seq_len, cfg.n_embd
    dense = cfg.n_layer * _block_flops(T, T, C, cfg.ffn_width) + 2 * T * C * cfg.vocab_size
    return float(dense + sum(mod_routed_blocks(cfg)) * _mod_gates(cfg, T))


# architectures whose cost does not follow from the registry's traits: arch name -> forward FLOPs (cfg, T)
_PEER_FORWARD = {"hourglass": _hourglass_forward, "mod": _mod_forward}


def forward_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Forward FLOPs per input position of a sequence of length `seq_len`."""
    return forward_flops_per_sequence(cfg, seq_len) / seq_len


def _no_input_gradient(cfg: ModelConfig, seq_len: int) -> int:
    """Backward FLOPs a training step skips: the first layer of each Mixture-of-Depths predictor reads a
    stop-gradient input, so only its weight gradient is computed."""
    if cfg.arch != "mod":
        return 0
    return sum(mod_routed_blocks(cfg)) * 2 * seq_len * cfg.n_embd * predictor_width(cfg.n_embd)


def training_flops_per_sequence(cfg: ModelConfig, seq_len: int) -> float:
    """Forward + backward FLOPs of one sequence: 3x the forward (less what `_no_input_gradient` skips)."""
    return 3.0 * forward_flops_per_sequence(cfg, seq_len) - _no_input_gradient(cfg, seq_len)


def training_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Forward + backward FLOPs per input position: 3x the forward (less what `_no_input_gradient` skips)."""
    return 3.0 * forward_flops_per_token(cfg, seq_len) - _no_input_gradient(cfg, seq_len) / seq_len


def _check_seq_len(cfg: ModelConfig, seq_len: int) -> None:
    if not (isinstance(seq_len, int) and 1 <= seq_len <= cfg.block_size):
        raise ValueError(f"seq_len={seq_len!r} is invalid: expected an integer in [1, {cfg.block_size}].")

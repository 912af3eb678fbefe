"""Parameter counts and analytic FLOPs against the models themselves and torch's FlopCounterMode."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count
from wt_tiny import tiny_config, tokens

from wt_model import ModelConfig, build_model
from wt_model.flops import (
    count_params,
    forward_flops_per_sequence,
    forward_flops_per_token,
    n_workers,
    training_flops_per_sequence,
    training_flops_per_token,
)

aten = torch.ops.aten


def _sdpa_cpu(query, key, value, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query, key, value)


def _sdpa_cpu_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs):
    return sdpa_backward_flop_count(grad_out, query, key, value)


# FlopCounterMode has no formula for SDPA's fused CPU kernel; give it torch's own SDPA formula (full L x S).
CPU_SDPA = {
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward,
}


@pytest.mark.parametrize(("arch", "expected"), [("standard", 3_448_576), ("worker", 3_452_928)])
def test_seed_parameter_counts(arch, expected):
    cfg = ModelConfig(arch=arch, vocab_size=65, block_size=1024, n_embd=256, n_layer=4, n_head=4, ffn_hidden=1024)
    model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert count_params(cfg).total == expected
    assert count_params(cfg).non_embedding == expected - 2 * 65 * 256


@pytest.mark.parametrize(
    ("arch", "overrides"),
    [
        ("standard", {}),
        ("standard", {"vocab_size": 100, "ffn_hidden": 48, "n_layer": 3}),
        ("worker", {}),
        ("worker", {"vocab_size": 100, "ffn_hidden": 48, "n_layer": 3}),
        ("worker", {"conv_kernel": 5}),  # the standard model has no conv
        ("standard-mixer", {}),
        ("standard-mixer", {"conv_kernel": 5, "vocab_size": 100, "n_layer": 3}),
    ],
)
def test_analytic_count_equals_numel(arch, overrides):
    cfg = tiny_config(arch=arch, **overrides)
    assert count_params(cfg).total == sum(p.numel() for p in build_model(cfg).parameters())


def _counted(model, idx, targets, backward):
    with FlopCounterMode(display=False, custom_mapping=CPU_SDPA) as counter:
        _, loss = model(idx, targets)
        if backward:
            loss.backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("arch", ["standard", "standard-mixer", "worker"])
@pytest.mark.parametrize("attention", ["sdpa", "naive"])
@pytest.mark.parametrize(
    ("overrides", "seq_len"),
    [({}, 32), ({}, 30), ({"n_embd": 64, "n_head": 4, "worker_interval": 3, "vocab_size": 90}, 47)],
)
def test_flops_match_flop_counter(arch, attention, overrides, seq_len):
    cfg = tiny_config(arch=arch, attention=attention, **overrides)
    model = build_model(cfg)
    B = 2
    idx, targets = tokens(B, seq_len, cfg.vocab_size), tokens(B, seq_len, cfg.vocab_size, seed=2)
    forward = _counted(model, idx, targets, backward=False)
    training = _counted(model, idx, targets, backward=True)
    assert forward == pytest.approx(B * forward_flops_per_sequence(cfg, seq_len), rel=0.05)
    assert training == pytest.approx(B * training_flops_per_sequence(cfg, seq_len), rel=0.05)
    # The only term the counter does not see is the token mixer's conv, computed as elementwise multiply-adds.
    conv = 2 * seq_len * cfg.n_embd * cfg.conv_kernel * cfg.n_layer if arch != "standard" else 0
    assert forward == B * (forward_flops_per_sequence(cfg, seq_len) - conv)


def test_per_token_is_per_sequence_over_length():
    cfg = tiny_config(arch="worker")
    assert forward_flops_per_token(cfg, 30) == forward_flops_per_sequence(cfg, 30) / 30
    assert training_flops_per_token(cfg, 30) == 3 * forward_flops_per_token(cfg, 30)


def test_worker_count_matches_model():
    model = build_model(tiny_config(arch="worker", worker_interval=4))
    for seq_len in (1, 2, 3, 4, 5, 8, 9, 30, 64):
        assert n_workers(model.cfg, seq_len) == model.worker_positions(seq_len, 0).numel()


def test_the_mixer_ablation_costs_the_standard_model_plus_its_conv():
    base, mixer = ModelConfig(arch="standard"), ModelConfig(arch="standard-mixer", conv_kernel=3)
    conv = 2 * 1024 * 256 * 3 * 4
    assert forward_flops_per_sequence(mixer, 1024) == forward_flops_per_sequence(base, 1024) + conv
    assert count_params(mixer).total == count_params(base).total + 4 * (256 * 3 + 256)


def test_worker_model_is_cheaper():
    cfg = ModelConfig(arch="worker")
    base = ModelConfig(arch="standard")
    assert forward_flops_per_token(cfg, 1024) < 0.6 * forward_flops_per_token(base, 1024)


def test_bad_seq_len_raises():
    with pytest.raises(ValueError, match="seq_len"):
        forward_flops_per_token(tiny_config(), 65)

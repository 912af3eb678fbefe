"""Both init schemes at the study's size: PyTorch's module defaults (the seed's) and nanoGPT's.

Each scheme's check lists the parameters that do not look like that scheme, so the same check run on a model
built with the other scheme shows that it can fail.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from wt_model import InplaceWorkerTransformer, ModelConfig, build_model
from wt_model.layers import RMSNorm

N_LAYER = 4


def _model(arch: str, init: str) -> nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, init=init, vocab_size=65, block_size=64, n_embd=256, n_head=4, n_layer=N_LAYER)
    return build_model(cfg)


def _near(value: float, target: float, rel: float = 0.1) -> bool:
    return abs(value - target) <= rel * target


def _uniform_like_torch(param: torch.Tensor, fan_in: int) -> bool:
    """Inside PyTorch's bound +-1/sqrt(fan_in), with the std of a uniform draw over it, 1/sqrt(3 * fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)
    return param.abs().max().item() <= bound and _near(param.std().item(), bound / math.sqrt(3))


def _torch_violations(model: nn.Module) -> list[str]:
    """Modules whose parameters do not look like their `reset_parameters()` defaults."""
    bad = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding) and not 0.95 <= module.weight.std().item() <= 1.05:
            bad.append(f"{name}.weight")
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            fan_in = module.weight[0].numel()  # in_features; in_channels/groups * kernel for the conv
            if not _uniform_like_torch(module.weight, fan_in):
                bad.append(f"{name}.weight")
            if module.bias is not None and not _uniform_like_torch(module.bias, fan_in):
                bad.append(f"{name}.bias")
        if isinstance(module, RMSNorm) and not torch.equal(module.weight, torch.ones_like(module.weight)):
            bad.append(f"{name}.weight")
    return bad


def _nanogpt_violations(model: nn.Module) -> list[str]:
    """Parameters off nanoGPT's scheme: N(0, 0.02), residual outs N(0, 0.02 / sqrt(2 * n_layer)), biases 0."""
    residual_std = 0.02 / math.sqrt(2 * N_LAYER)
    bad = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            residual = name.endswith("attn.out") or name.endswith("ffn.down")
            if not _near(module.weight.std().item(), residual_std if residual else 0.02):
                bad.append(f"{name}.weight")
            if getattr(module, "bias", None) is not None and module.bias.count_nonzero() > 0:
                bad.append(f"{name}.bias")
        if isinstance(module, RMSNorm) and not torch.equal(module.weight, torch.ones_like(module.weight)):
            bad.append(f"{name}.weight")
    return bad


@pytest.mark.parametrize("arch", ["standard", "worker"])
def test_torch_init_keeps_module_defaults(arch):
    model = _model(arch, "torch")
    assert _torch_violations(model) == []
    assert ModelConfig().init == "torch"  # the seed's init is the default


@pytest.mark.parametrize("arch", ["standard", "worker"])
def test_nanogpt_init(arch):
    model = _model(arch, "nanogpt")
    assert _nanogpt_violations(model) == []
    if arch == "worker":  # nanoGPT's scheme has no conv: it keeps PyTorch's default
        conv = model.blocks[0].mixer.conv
        assert _uniform_like_torch(conv.weight, conv.weight[0].numel())


@pytest.mark.parametrize("init", ["torch", "nanogpt"])
def test_worker_marker_is_small_under_both_schemes(init):
    model = _model("worker", init)
    assert 0.017 <= model.worker_emb.std().item() <= 0.023


@pytest.mark.parametrize("arch", ["standard", "worker"])
def test_each_check_fails_on_the_other_scheme(arch):
    torch_model, nanogpt_model = _model(arch, "torch"), _model(arch, "nanogpt")
    flagged_by_torch_check = set(_torch_violations(nanogpt_model))
    flagged_by_nanogpt_check = set(_nanogpt_violations(torch_model))
    linear_weights = {f"{name}.weight" for name, m in torch_model.named_modules() if isinstance(m, nn.Linear)}
    biases = {f"{name}.bias" for name, m in torch_model.named_modules() if getattr(m, "bias", None) is not None}
    biases -= {f"{name}.bias" for name, m in torch_model.named_modules() if isinstance(m, nn.Conv1d)}
    assert {"tok_emb.weight", *linear_weights, *biases} <= flagged_by_torch_check
    assert {"tok_emb.weight", *linear_weights, *biases} <= flagged_by_nanogpt_check


def test_seed_constructor_gets_the_torch_init():
    torch.manual_seed(0)
    model = InplaceWorkerTransformer(vocab_size=65, block_size=64, dim=256, num_heads=4, num_layers=N_LAYER)
    assert model.cfg.init == "torch"
    assert _torch_violations(model) == []


def test_bad_init_names_the_field():
    with pytest.raises(ValueError, match=r"ModelConfig\.init='xavier' is invalid: expected one of torch, nanogpt"):
        ModelConfig(init="xavier")

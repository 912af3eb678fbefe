"""`naive` (materialised scores) and `sdpa` agree in fp32 with dropout 0, forward and gradients."""

from __future__ import annotations

import pytest
import torch
from wt_tiny import tiny_config, tokens

from wt_model import build_model


def _forward_backward(model, idx, targets):
    offset = model.cfg.worker_interval // 2 if model.cfg.arch == "worker" else None
    logits, loss = model(idx, targets, worker_offset=offset)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    return logits.detach(), grads


@pytest.mark.parametrize(("arch", "interval"), [("standard", 4), ("worker", 1), ("worker", 3), ("worker", 4)])
def test_naive_and_sdpa_agree(arch, interval):
    torch.manual_seed(0)
    naive = build_model(tiny_config(arch=arch, attention="naive", worker_interval=interval))
    sdpa = build_model(tiny_config(arch=arch, attention="sdpa", worker_interval=interval))
    sdpa.load_state_dict(naive.state_dict())
    idx, targets = tokens(3, 23), tokens(3, 23, seed=2)
    logits_naive, grads_naive = _forward_backward(naive, idx, targets)
    logits_sdpa, grads_sdpa = _forward_backward(sdpa, idx, targets)
    torch.testing.assert_close(logits_sdpa, logits_naive, rtol=0, atol=1e-5)
    for name, grad in grads_naive.items():
        torch.testing.assert_close(grads_sdpa[name], grad, rtol=0, atol=1e-5, msg=name)
    assert any(g.abs().sum() > 0 for g in grads_naive.values())

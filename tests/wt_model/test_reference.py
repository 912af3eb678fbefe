"""Both models match the independent plain-PyTorch reference (reference_worker.py) in fp32, under both inits.

The torch-init cases carry the sensitivity: their attention is far from uniform, so a wrong RoPE direction,
mask or phase moves the logits by 1e-2 or more. Under the nanogpt init the tiny worker model's attention is
nearly uniform and some such errors stay below atol; those cases check that both read the same weights.
"""

from __future__ import annotations

import pytest
import torch
from reference_worker import reference_forward
from wt_tiny import tiny_model, tokens


@pytest.mark.parametrize(
    ("interval", "seq_len", "offset", "init"),
    [
        (1, 5, 0, "torch"),  # every position a worker
        (2, 16, 1, "nanogpt"),
        (3, 33, 0, "torch"),  # ragged: the last position is an extra worker
        (3, 16, 2, "nanogpt"),
        (4, 1, 0, "torch"),  # T = 1: only the last position works
        (4, 33, 3, "torch"),  # phase 3: position 0 is a worker
        (8, 5, 0, "nanogpt"),  # interval > T
        (8, 33, 5, "torch"),
    ],
)
def test_worker_model_matches_reference(interval, seq_len, offset, init):
    model = tiny_model(arch="worker", worker_interval=interval, init=init).eval()
    idx, targets = tokens(2, seq_len), tokens(2, seq_len, seed=2)
    with torch.no_grad():
        logits, loss = model(idx, targets, worker_offset=offset)
        ref_logits, ref_loss = reference_forward(model.state_dict(), model.cfg, idx, targets, offset)
    assert logits.shape == ref_logits.shape
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(loss, ref_loss, rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch", ["standard", "standard-mixer"])
@pytest.mark.parametrize("init", ["torch", "nanogpt"])
def test_standard_model_matches_reference(arch, init):
    model = tiny_model(arch=arch, init=init, conv_kernel=5).eval()
    idx, targets = tokens(2, 33), tokens(2, 33, seed=2)
    with torch.no_grad():
        logits, loss = model(idx, targets)
        ref_logits, ref_loss = reference_forward(model.state_dict(), model.cfg, idx, targets)
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(loss, ref_loss, rtol=0, atol=1e-5)

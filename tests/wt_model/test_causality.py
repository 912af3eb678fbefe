"""Changing tokens after position t never changes any prediction at or before t."""

from __future__ import annotations

import pytest
import torch
from wt_tiny import tiny_model, tokens

T = 19  # not a multiple of most intervals, so the always-on last worker is exercised


def _predictions(model, idx, offset):
    """(positions, logits (B, P, V)) of every predicted position of one pass."""
    logits, _ = model(idx, worker_offset=offset)
    if logits.shape[1] == idx.shape[1]:
        return torch.arange(idx.shape[1]), logits
    return model.worker_positions(idx.shape[1], offset), logits


@pytest.mark.parametrize("arch", ["standard", "worker"])
@pytest.mark.parametrize("attention", ["sdpa", "naive"])
@pytest.mark.parametrize("interval", [1, 3, 4, 8])
@pytest.mark.parametrize("train_mode", [False, True])
def test_future_tokens_do_not_change_past_predictions(arch, attention, interval, train_mode):
    model = tiny_model(arch=arch, attention=attention, worker_interval=interval)
    model.train(train_mode)
    idx = tokens(2, T)
    offsets = range(interval) if arch == "worker" else [None]
    for t in (0, 5, 11, T - 2):
        changed = idx.clone()
        changed[:, t + 1 :] = (changed[:, t + 1 :] + 7) % 65
        for offset in offsets:
            pos, before = _predictions(model, idx, offset)
            _, after = _predictions(model, changed, offset)
            past = pos <= t
            assert past.any() or arch == "worker"
            torch.testing.assert_close(after[:, past], before[:, past], rtol=0, atol=1e-6)
            # The check can fail: the last prediction does see the changed tokens.
            assert not torch.allclose(after[:, -1], before[:, -1], atol=1e-6)

"""Changing tokens after position t never changes any prediction at or before t."""

from __future__ import annotations

import pytest
import torch
from wt_tiny import tiny_model, tokens

T = 19  # not a multiple of most intervals, so the always-on last worker is exercised


def _predictions(model, idx, offset):
    """(positions, logits (B, P, V)) of every predicted position of one pass. The RNG is reseeded first, so in
    training mode both inputs get the same dropout masks and only the tokens differ."""
    torch.manual_seed(0)
    logits, _ = model(idx, worker_offset=offset)
    if logits.shape[1] == idx.shape[1]:
        return torch.arange(idx.shape[1]), logits
    return model.worker_positions(idx.shape[1], offset), logits


# (arch, attention, worker interval): the interval only exists for the worker model; standard-mixer is the
# standard model with the worker's token mixer, whose conv must be causal too
MODELS = [(arch, attention, None) for arch in ("standard", "standard-mixer") for attention in ("sdpa", "naive")] + [
    ("worker", attention, interval) for attention in ("sdpa", "naive") for interval in (1, 3, 4, 8)
]


@pytest.mark.parametrize(("arch", "attention", "interval"), MODELS)
@pytest.mark.parametrize("train_mode", [False, True], ids=["eval", "train-dropout"])
def test_future_tokens_do_not_change_past_predictions(arch, attention, interval, train_mode):
    """In training mode dropout is on (0.1), so the training paths (dropout attention included) are checked."""
    model = tiny_model(arch=arch, attention=attention, worker_interval=interval or 4, dropout=0.1)
    model.train(train_mode)
    idx = tokens(2, T)
    offsets = range(interval) if arch == "worker" else [None]
    for offset in offsets:
        pos, before = _predictions(model, idx, offset)
        for t in (0, 5, 11, T - 2):
            changed = idx.clone()
            changed[:, t + 1 :] = (changed[:, t + 1 :] + 7) % 65
            _, after = _predictions(model, changed, offset)
            past = pos <= t
            assert past.any() or arch == "worker"
            torch.testing.assert_close(after[:, past], before[:, past], rtol=0, atol=1e-6)
            # The check can fail: the last prediction does see the changed tokens.
            assert not torch.allclose(after[:, -1], before[:, -1], atol=1e-6)

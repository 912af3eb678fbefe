"""Sampling for both models; the worker model predicts from a worker (the last position)."""

from __future__ import annotations

import pytest
import torch
from wt_tiny import tiny_model, tokens

from wt_model import generate


@pytest.mark.parametrize("arch", ["standard", "worker"])
def test_generate_shapes_and_determinism(arch):
    model = tiny_model(arch=arch, block_size=16).eval()
    idx = tokens(2, 5)
    out = generate(model, idx, 20, temperature=0.8, top_k=5, generator=torch.Generator().manual_seed(0))
    again = generate(model, idx, 20, temperature=0.8, top_k=5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 25)  # runs past block_size: the context is cropped
    assert torch.equal(out[:, :5], idx)
    assert torch.equal(out, again)
    assert int(out.max()) < 65


@pytest.mark.parametrize("arch", ["standard", "worker"])
def test_greedy_and_top1_pick_the_last_rows_argmax(arch):
    model = tiny_model(arch=arch, worker_interval=4).eval()
    idx = tokens(2, 10)  # position 9 is not a regular worker at phase 0: the always-on last worker predicts
    with torch.no_grad():
        logits, _ = model(idx)
    expected = logits[:, -1].argmax(-1)
    assert torch.equal(generate(model, idx, 1, temperature=0)[:, -1], expected)
    assert torch.equal(generate(model, idx, 1, top_k=1)[:, -1], expected)


def test_worker_prediction_comes_from_a_worker_row():
    """generate reads the last logits row; in the worker model that row is position T-1, always a worker."""
    model = tiny_model(arch="worker", worker_interval=4).eval()
    for seq_len in range(1, 13):
        assert model.worker_positions(seq_len, 0)[-1].item() == seq_len - 1
    rows = []
    model.lm_head.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[1]))
    generate(model, tokens(1, 10), 1)
    assert rows == [model.worker_positions(10, 0).numel()]  # the head ran on worker rows only


def test_bad_sampling_arguments():
    model = tiny_model(arch="worker").eval()
    with pytest.raises(ValueError, match="temperature"):
        generate(model, tokens(1, 3), 1, temperature=-1)
    with pytest.raises(ValueError, match="top_k"):
        generate(model, tokens(1, 3), 1, top_k=0)

"""Shapes and worker sets at the edges: interval 1, interval >= T, ragged T, batch 1, T=1, other vocabs."""

from __future__ import annotations

import pytest
import torch
from wt_tiny import tiny_model, tokens


@pytest.mark.parametrize(
    ("interval", "seq_len", "expected"),
    [
        (1, 6, [0, 1, 2, 3, 4, 5]),
        (4, 8, [3, 7]),
        (4, 10, [3, 7, 9]),  # T not a multiple of k: the last position is always a worker
        (8, 5, [4]),  # interval >= T: only the last token works
        (5, 5, [4]),
        (3, 1, [0]),  # T = 1
    ],
)
def test_worker_positions_phase_zero(interval, seq_len, expected):
    model = tiny_model(arch="worker", worker_interval=interval)
    assert model.worker_positions(seq_len, 0).tolist() == expected
    logits, loss = model(tokens(2, seq_len), tokens(2, seq_len, seed=2))
    assert logits.shape == (2, len(expected), 65)
    assert torch.isfinite(loss)


def test_worker_positions_other_phases():
    model = tiny_model(arch="worker", worker_interval=4)
    assert model.worker_positions(10, 1).tolist() == [2, 6, 9]
    assert model.worker_positions(10, 2).tolist() == [1, 5, 9]
    assert model.worker_positions(10, 3).tolist() == [0, 4, 8, 9]
    with pytest.raises(ValueError, match="worker_offset=4"):
        model.worker_positions(10, 4)


@pytest.mark.parametrize("arch", ["standard", "worker"])
@pytest.mark.parametrize("attention", ["sdpa", "naive"])
@pytest.mark.parametrize(("batch", "seq_len"), [(1, 1), (1, 13), (3, 1), (2, 64)])
def test_shapes_and_backward(arch, attention, batch, seq_len):
    model = tiny_model(arch=arch, attention=attention, vocab_size=17, dropout=0.1)
    idx, targets = tokens(batch, seq_len, 17), tokens(batch, seq_len, 17, seed=2)
    logits, loss = model(idx, targets)
    rows = seq_len if arch == "standard" else model.worker_positions(seq_len, 0).numel()
    assert logits.shape == (batch, rows, 17)
    loss.backward()
    assert model.tok_emb.weight.grad is not None
    assert model(idx)[1] is None


def test_interval_one_worker_matches_every_position():
    """With k = 1 every position is a worker, updated in place by the mixer-fed attention and the FFN: the
    standard model with the token mixer (standard-mixer), once the worker marker is folded into the embedding."""
    worker = tiny_model(arch="worker", worker_interval=1).eval()
    weights = {name: p for name, p in worker.state_dict().items() if name != "worker_emb"}
    weights["tok_emb.weight"] = weights["tok_emb.weight"] + worker.worker_emb  # every row is a worker row
    mixer = tiny_model(arch="standard-mixer").eval()
    mixer.load_state_dict(weights)
    idx, targets = tokens(2, 9), tokens(2, 9, seed=3)
    with torch.no_grad():
        logits, loss = worker(idx, targets)
        expected, expected_loss = mixer(idx, targets)
    assert logits.shape == (2, 9, 65)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(loss, expected_loss, rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch", ["standard", "worker"])
def test_too_long_sequence_raises(arch):
    model = tiny_model(arch=arch)
    with pytest.raises(ValueError, match="block_size"):
        model(tokens(1, 65))


def test_non_worker_rows_never_updated():
    """Only worker rows of the residual stream change, so the stream at non-worker rows stays the embedding."""
    model = tiny_model(arch="worker", worker_interval=4).eval()
    idx = tokens(1, 12)
    seen = []
    model.blocks[-1].register_forward_hook(lambda module, args, out: seen.append(args[0]))
    model(idx)
    stream = seen[0]  # the full stream entering the last block, (B, T, C)
    pos = model.worker_positions(12, 0)
    others = torch.tensor([p for p in range(12) if p not in pos.tolist()])
    torch.testing.assert_close(stream[:, others], model.tok_emb(idx)[:, others])
    assert not torch.allclose(stream[:, pos], model.tok_emb(idx)[:, pos] + model.worker_emb)


def test_random_worker_phase_is_drawn_by_the_caller_in_training_only():
    """The training phase comes from draw_phase() (torch's RNG, reproducible) and is passed in; a training
    forward without it is an error naming the fix, not a phase drawn inside forward (a graph break)."""
    model = tiny_model(arch="worker", worker_interval=4, random_worker_phase=True)
    drawn = []
    original = model.worker_positions
    model.worker_positions = lambda T, offset=0, device=None: (drawn.append(offset), original(T, offset, device))[1]
    idx = tokens(2, 16)
    torch.manual_seed(3)
    phases = [model.draw_phase() for _ in range(20)]
    assert set(phases) == {0, 1, 2, 3}
    torch.manual_seed(3)
    assert [model.draw_phase() for _ in range(20)] == phases  # reproducible from torch's RNG
    for phase in phases[:3]:
        model(idx, worker_offset=phase)
    assert drawn == phases[:3]
    with pytest.raises(ValueError, match=r"worker_offset=None is invalid .* model.draw_phase\(\)"):
        model(idx)
    drawn.clear()
    model.eval()
    for _ in range(5):
        model(idx)
    assert drawn == [0] * 5  # evaluation: phase 0 unless told otherwise

"""evaluate_batch against a brute-force per-position reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from wt_tiny import tiny_model, tokens

from wt_model import EvalLosses, evaluate_batch
from wt_model.evaluate import loss_sums


def _brute_force_all(model, x, y):
    """Position t's loss from a prefix pass x[:, :t+1] in which t is a regular worker (worker model), or the
    last position of the prefix (standard). Causality makes this equal to the full-sequence pass."""
    k = getattr(model.cfg, "worker_interval", 1)
    total = 0.0
    for t in range(x.shape[1]):
        offset = (k - 1 - t % k) % k if model.cfg.arch == "worker" else None
        logits, _ = model(x[:, : t + 1], worker_offset=offset)
        total += F.cross_entropy(logits[:, -1], y[:, t], reduction="sum").item()
    return total


# (arch, worker interval): the interval only exists for the worker model
MODELS = [("standard", None)] + [("worker", interval) for interval in (1, 3, 4, 25)]


@pytest.mark.parametrize(("arch", "interval"), MODELS)
@pytest.mark.parametrize("attention", ["sdpa", "naive"])
def test_all_positions_loss_matches_brute_force(arch, interval, attention):
    model = tiny_model(arch=arch, worker_interval=interval or 4, attention=attention).eval()
    x, y = tokens(2, 18), tokens(2, 18, seed=2)
    losses = evaluate_batch(model, x, y)
    assert isinstance(losses, EvalLosses)
    assert losses.n_all == 2 * 18
    with torch.no_grad():
        expected = _brute_force_all(model, x, y)
    assert losses.loss_sum_all == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("interval", [1, 4, 25])
def test_seed_metric_is_training_loss_at_phase_zero(interval):
    model = tiny_model(arch="worker", worker_interval=interval).eval()
    x, y = tokens(3, 18), tokens(3, 18, seed=2)
    losses = evaluate_batch(model, x, y)
    with torch.no_grad():
        _, loss = model(x, y)
    assert losses.n_seed == 3 * model.worker_positions(18, 0).numel()
    assert losses.loss_sum_seed / losses.n_seed == pytest.approx(loss.item(), rel=1e-5)


def test_standard_seed_metric_is_all_positions():
    model = tiny_model(arch="standard").eval()
    x, y = tokens(2, 10), tokens(2, 10, seed=2)
    losses = evaluate_batch(model, x, y)
    with torch.no_grad():
        _, loss = model(x, y)
    assert losses.loss_sum_seed == losses.loss_sum_all
    assert losses.loss_sum_all / losses.n_all == pytest.approx(loss.item(), rel=1e-5)


def _host_sums(model, x, y):
    """The sums as the host added them before they stayed on the device: Python floats of each pass's CE."""
    B, T = x.shape
    if model.cfg.arch != "worker":
        logits, _ = model(x)
        total = F.cross_entropy(logits.reshape(B * T, -1), y.reshape(-1), reduction="sum").item()
        return total, total
    k, loss_all, loss_seed = model.cfg.worker_interval, 0.0, 0.0
    for offset in range(k):
        n_regular = len(range((k - 1 - offset) % k, T, k))
        if n_regular == 0 and offset != 0:
            continue
        logits, _ = model(x, worker_offset=offset)
        y_w = y.index_select(1, model.worker_positions(T, offset))
        if offset == 0:
            loss_seed = F.cross_entropy(logits.flatten(0, 1), y_w.flatten(), reduction="sum").item()
        if n_regular:
            flat = logits[:, :n_regular].flatten(0, 1)
            loss_all += F.cross_entropy(flat, y_w[:, :n_regular].flatten(), reduction="sum").item()
    return loss_all, loss_seed


@pytest.mark.parametrize(("arch", "interval"), [("standard", None), ("worker", 4), ("worker", 25)])
def test_device_sums_are_the_numbers_the_host_summed(arch, interval):
    """Kept on the device (float64) and read once, the sums are bit for bit the old per-pass host reads."""
    model = tiny_model(arch=arch, worker_interval=interval or 4).eval()
    x, y = tokens(3, 18), tokens(3, 18, seed=2)
    losses = evaluate_batch(model, x, y)
    with torch.no_grad():
        assert (losses.loss_sum_all, losses.loss_sum_seed) == _host_sums(model, x, y)


@pytest.mark.parametrize("arch", ["standard", "worker"])
def test_padding_rows_change_no_sum(arch):
    """A short last batch padded to the compiled shape: only the first `rows` rows are scored."""
    model = tiny_model(arch=arch).eval()
    x, y = tokens(3, 18), tokens(3, 18, seed=2)
    padded_x = torch.cat([x, x[-1:].expand(2, -1)])  # (5, 18), as evaluation pads
    padded_y = torch.cat([y, y[-1:].expand(2, -1)])
    plain, padded = loss_sums(model, x, y), loss_sums(model, padded_x, padded_y, rows=3)
    assert (padded.n_all, padded.n_seed) == (plain.n_all, plain.n_seed)
    torch.testing.assert_close(padded.sums, plain.sums, rtol=1e-12, atol=0)
    assert loss_sums(model, padded_x, padded_y).n_all == 5 * 18

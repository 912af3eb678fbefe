"""The pure-int worker positions (used by FLOPs and evaluation) against the model's own tensor positions."""

from __future__ import annotations

import pytest
from wt_tiny import tiny_model

from wt_model.flops import n_workers
from wt_model.positions import regular_workers, worker_position_list


@pytest.mark.parametrize("interval", [1, 2, 3, 4, 7])
def test_int_positions_match_the_model_at_every_phase_and_length(interval):
    model = tiny_model(arch="worker", worker_interval=interval)
    for T in range(1, 20):
        for offset in range(interval):
            expected = model.worker_positions(T, offset).tolist()
            assert worker_position_list(T, interval, offset) == expected, (T, offset)
            regular = list(regular_workers(T, interval, offset))
            assert expected[: len(regular)] == regular and all(p % interval == regular[0] % interval for p in regular)
        assert n_workers(model.cfg, T) == len(model.worker_positions(T, 0))


def test_a_phase_outside_the_interval_is_refused():
    with pytest.raises(ValueError, match=r"worker_offset=4 is invalid: expected an integer in \[0, 4\)"):
        worker_position_list(10, 4, 4)

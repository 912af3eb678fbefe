"""Bad model configs raise one ValueError naming the field, the value and what is allowed."""

from __future__ import annotations

import pytest

from wt_model import ModelConfig


@pytest.mark.parametrize(
    ("overrides", "field", "value"),
    [
        ({"n_embd": 30, "n_head": 4}, "n_head", "4"),  # 30 not divisible by 4
        ({"n_embd": 24, "n_head": 8}, "n_head", "8"),  # head dim 3 is odd
        ({"worker_interval": 0}, "worker_interval", "0"),
        ({"worker_interval": -2}, "worker_interval", "-2"),
        ({"arch": "mamba"}, "arch", "'mamba'"),
        ({"attention": "flash"}, "attention", "'flash'"),
        ({"dropout": -0.1}, "dropout", "-0.1"),
        ({"dropout": 1.0}, "dropout", "1.0"),
        ({"vocab_size": 0}, "vocab_size", "0"),
        ({"random_worker_phase": "yes"}, "random_worker_phase", "'yes'"),
        ({"ffn_hidden": -1}, "ffn_hidden", "-1"),
        ({"init": "xavier"}, "init", "'xavier'"),
    ],
)
def test_bad_config_names_field_and_value(overrides, field, value):
    with pytest.raises(ValueError) as excinfo:
        ModelConfig(**overrides)
    message = str(excinfo.value)
    assert f"{field}={value}" in message
    assert "expected" in message


def test_ffn_hidden_defaults_to_four_times_width():
    assert ModelConfig(n_embd=64, n_head=4).ffn_width == 256
    assert ModelConfig(n_embd=64, n_head=4).ffn_hidden == 0  # stored as given: derived, never rewritten
    assert ModelConfig(n_embd=64, n_head=4, ffn_hidden=100).ffn_width == 100

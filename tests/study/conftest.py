"""Fixtures for the study tests: tiny specs on the committed corpus excerpt (ray_tmp and ray_session come from
tests/conftest.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXCERPT

TINY_SPEC = {
    "name": "tiny",
    "data": {"corpus": str(EXCERPT)},
    "budget": {"kind": "seconds", "value": 3},
    "eval": {"every_s": 1.0, "val_tokens": 1024},
    "checkpoint_every_s": 1.0,
    "train": {"batch_size": 4, "lr": 0.001},
    "model": {"n_embd": 32, "n_layer": 1, "n_head": 2, "dropout": 0.0},
    "axes": {"arch": ["standard", "worker"], "worker_interval": [4], "seq_len": [32]},
    "resources": {"cpus": 1},
    "max_concurrent": 2,
}


def deep_update(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def write_spec(tmp_path):
    """write_spec(storage=..., **changes) -> path of a YAML spec based on TINY_SPEC."""

    def write(storage: Path | str | None = None, name: str = "spec.yaml", **changes) -> Path:
        doc = deep_update(TINY_SPEC, changes)
        doc["storage"] = str(storage if storage is not None else tmp_path / "results")
        path = tmp_path / name
        path.write_text(yaml.safe_dump(doc))
        return path

    return write


@pytest.fixture
def poison_step(monkeypatch):
    """poison_step(at) makes the training loop's `at`-th step (counted from 1) return a NaN loss."""
    import study.train.loop as loop

    def poison(at: int) -> None:
        real_step, calls = loop._step, []

        def poisoned(*args):
            calls.append(1)
            loss = real_step(*args)
            return loss * math.nan if len(calls) == at else loss

        monkeypatch.setattr(loop, "_step", poisoned)

    return poison

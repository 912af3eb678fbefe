"""Arms compared by what sets them apart: an arm the registry declares to differ from its reference in one config
field (a fixed setting, or a field its rows may hold apart) shares its reference's cell and gets a verdict."""

from __future__ import annotations

import json

import pytest

from analysis.configs import config_fields, reference_of, split_fields
from analysis.tuning import choose_settings
from analysis.verdicts import upgrade_columns, verdicts
from tests.analysis.frames import arm_rows, final_frame
from wt_model import archs

ROPE = archs.Arch(
    "standard-rope500",
    "Standard, RoPE base 500",
    "wt_model.standard:StandardTransformer",
    settings=(("rope_base", 500.0),),
)
WIDE = archs.Arch(
    "standard-ffn2x", "Standard, FFN 2x", "wt_model.standard:StandardTransformer", differs=("ffn_hidden",)
)


@pytest.fixture
def test_arms(monkeypatch):
    """The two arms above in the registry, for this test only."""
    for arch in (ROPE, WIDE):
        monkeypatch.setitem(archs.ARCHS, arch.name, arch)
        monkeypatch.setitem(archs.LABELS, arch.name, (arch, archs.Variant(arch.name, arch.title)))


def _with_rope(rows: list[dict], rope_base: float) -> list[dict]:
    model = {"rope_base": rope_base}
    return [dict(r, config_json=json.dumps({"trial_id": "x", "run": {"model": model}})) for r in rows]


def test_an_arm_that_fixes_one_field_is_compared_with_the_standard_model(test_arms):
    rows = _with_rope(arm_rows("standard", [2.00, 2.02, 2.01, 2.03, 2.02]), 10000.0)
    rows += _with_rope(arm_rows("standard-rope500", [2.10, 2.13, 2.11, 2.12, 2.14]), 500.0)
    final = final_frame(rows)
    assert final["cell_key"].nunique() == 1  # the rope base tells the arms apart, it does not split the cell
    v = verdicts(final, choose_settings(final))
    assert len(v) == 1
    row = v.iloc[0]
    assert (row["arm"], row["reference"], row["n_arm"], row["n_ref"]) == ("standard-rope500", "standard", 5, 5)
    assert row["diff"] == pytest.approx(0.104, abs=1e-9)
    assert row["verdict"].startswith("standard-rope500 worse")


def test_an_arm_whose_rows_differ_in_a_declared_field_shares_the_cell(test_arms):
    rows = arm_rows("standard", [2.0, 2.1, 2.05], ffn_hidden=256) + arm_rows(
        "standard-ffn2x", [2.2, 2.3, 2.25], ffn_hidden=128
    )
    rows += arm_rows("worker", [1.9, 2.0, 1.95], ffn_hidden=256)
    final = final_frame(rows)
    cell, arm, _ = split_fields(config_fields(final))
    assert "ffn_hidden" in arm and "ffn_hidden" not in cell
    v = verdicts(final, choose_settings(final)).set_index("arm")
    assert v.loc["standard-ffn2x", "n_ref"] == 3 and v.loc["worker k=4", "n_ref"] == 3
    assert v.loc["standard-ffn2x", "verdict"] != "no standard baseline"


def test_a_declared_field_the_reference_varies_stays_a_cell_field(test_arms):
    """A ladder of FFN widths for the standard model: the arm's rows cannot say which width is their reference,
    so the width splits cells as any other field does."""
    rows = arm_rows("standard", [2.0, 2.1], ffn_hidden=256) + arm_rows("standard", [1.9, 2.0], ffn_hidden=512)
    rows += arm_rows("standard-ffn2x", [2.2, 2.3], ffn_hidden=128)
    cell, arm, _ = split_fields(config_fields(final_frame(rows)))
    assert "ffn_hidden" in cell and "ffn_hidden" not in arm


def test_references_come_from_the_registry():
    assert reference_of("standard") is None
    assert reference_of("worker") == reference_of("worker-random-phase") == reference_of("standard-mixer") == "standard"
    assert reference_of("an-arm-from-an-older-study") == "standard"


def test_an_older_verdicts_file_reads_with_todays_names():
    import pandas as pd

    old = pd.DataFrame({"arm": ["worker k=4"], "n_worker": [5], "standard_mean": [2.0], "worker_tuned": ["lr 0.004"]})
    new = upgrade_columns(old)
    assert list(new.columns) == ["arm", "reference", "n_arm", "ref_mean", "arm_tuned"]
    assert new["reference"].tolist() == ["standard"]


def test_a_test_only_arm_trains_through_the_spec_with_its_setting(test_arms, monkeypatch):
    """The arm is one registry entry: the spec accepts it, its trials carry its fixed setting, its model builds."""
    import torch

    from study.config.space import expand
    from study.config.specfile import parse_spec
    from tests.study.conftest import TINY_SPEC, deep_update
    from wt_model import config

    monkeypatch.setitem(config.CHOICES, "arch", (*config.CHOICES["arch"], ROPE.name))
    spec = parse_spec(deep_update(TINY_SPEC, {"axes": {"arch": ["standard", ROPE.name], "seq_len": [32]}}))
    by_arch = {t.arch: t.run.model for t in expand(spec)}
    assert by_arch[ROPE.name].rope_base == 500.0 and by_arch["standard"].rope_base == 10000.0
    model = archs.model_class(ROPE.name)(by_arch[ROPE.name])
    logits = model(torch.zeros(1, 32, dtype=torch.long))[0]
    assert logits.shape[-1] == by_arch[ROPE.name].vocab_size

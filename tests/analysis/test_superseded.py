"""The resume rule: rows of an earlier attempt after a later attempt's resume step are dropped by the reader."""

from __future__ import annotations

import pandas as pd
from pandas.testing import assert_series_equal

from analysis.load import superseded


def test_rows_redone_after_a_resume_are_superseded():
    frame = pd.DataFrame(
        {
            "trial_id": ["a"] * 7 + ["b"] * 2,
            "attempt": [1, 1, 1, 1, 2, 2, 3, 1, 1],
            "resumed_from_step": [0, 0, 0, 0, 20, 20, 10, 0, 0],
            "step": [10, 20, 31, 42, 30, 41, 15, 5, 6],
        }
    )
    expected = pd.Series([False, True, True, True, True, True, False, False, False])
    assert_series_equal(superseded(frame), expected, check_names=False)


def test_a_single_attempt_and_missing_attempts_are_never_superseded():
    frame = pd.DataFrame(
        {"trial_id": ["a", "a"], "attempt": [None, None], "resumed_from_step": [None, None], "step": [1, 2]}
    )
    assert not superseded(frame).any()
    one = pd.DataFrame({"trial_id": ["a", "a"], "attempt": [7, 7], "resumed_from_step": [0, 0], "step": [1, 2]})
    assert not superseded(one).any()

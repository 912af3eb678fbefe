"""How often Tune saves its experiment state (study.tune.tuner.experiment_state_period_s): by store and size."""

from __future__ import annotations

import pyarrow.fs as pafs
import pytest

from study.tune.tuner import experiment_state_period_s
from wt_base.storage import Location

LOCAL = Location(pafs.LocalFileSystem(), "/data/study", "/data/study")
BUCKET = Location(pafs.SubTreeFileSystem("/", pafs.LocalFileSystem()), "bucket/study", "s3://bucket/study")


@pytest.mark.parametrize(
    "location, trials, period_s",
    [
        (LOCAL, 6, 5.0),
        (LOCAL, 500, 5.0),
        (LOCAL, 2000, 20.0),
        (LOCAL, 10_000, 100.0),
        (LOCAL, 1_000_000, 300.0),
        (BUCKET, 6, 30.0),
        (BUCKET, 2000, 100.0),
        (BUCKET, 10_000, 300.0),
    ],
)
def test_the_period_grows_with_the_study_and_is_longer_on_an_object_store(location, trials, period_s):
    assert experiment_state_period_s(location, trials) == period_s

"""The dry run's estimate counts what the study would run on: this machine, a cluster, or a stated machine."""

from __future__ import annotations

import pytest

from study.cli import main
from study.tune.capacity import Capacity, stated_capacity, trials_at_once
from wt_base.errors import StudyError

LAPTOP = Capacity(((2.0, 0.0),), "this machine")


@pytest.mark.parametrize(
    ("capacity", "cpus", "gpus", "max_concurrent", "trials", "count", "why"),
    [
        (LAPTOP, 1, None, 0, 525, 2, "each takes 1 CPU"),  # auto gpus: none here
        (LAPTOP, 1, 0, 1, 6, 1, "each takes 1 CPU; max_concurrent 1"),
        (LAPTOP, 2, 0, 0, 6, 1, "each takes 2 CPUs"),
        (LAPTOP, 1, 1, 0, 6, 0, "each trial wants resources.gpus=1 and there is none"),
        (LAPTOP, 4, 0, 0, 6, 0, "each takes 4 CPUs (resources), more than any node has"),
        (stated_capacity(None, 8), 4, 1, 0, 20, 8, "each takes 4 CPUs and 1 GPU"),
        (stated_capacity(None, 8), 4, None, 0, 3, 3, "each takes 4 CPUs and 1 GPU; only 3 trials"),
        (Capacity(((16.0, 2.0),), "x"), 1, 0.25, 0, 100, 8, "each takes 1 CPU and 0.25 GPU"),
        (Capacity(((4.0, 1.0), (8.0, 2.0), (8.0, 0.0)), "x"), 2, 1, 0, 10, 3, "each takes 2 CPUs and 1 GPU"),
    ],
)
def test_trials_at_once_from_the_nodes_and_the_spec(capacity, cpus, gpus, max_concurrent, trials, count, why):
    slots = trials_at_once(capacity, cpus, gpus, max_concurrent, trials)
    assert (slots.count, slots.why) == (count, why)


def test_capacities_describe_what_they_count():
    assert LAPTOP.describe() == "2 CPUs, no GPU"
    assert stated_capacity(None, 8).describe() == "8 GPUs"  # CPUs not stated: not a limit, not shown
    assert stated_capacity(64, None).describe() == "64 CPUs, no GPU"
    assert Capacity(((4.0, 1.0), (8.0, 2.0)), "the cluster at auto").describe() == "12 CPUs, 3 GPUs on 2 nodes"
    with pytest.raises(StudyError, match=r"^--gpus -1 is invalid: expected an integer >= 0\.$"):
        stated_capacity(None, -1)


@pytest.fixture
def laptop(monkeypatch):
    """This machine, as the dry run sees it: 2 CPUs, no GPU."""
    import torch

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def _dry_run(write_spec, capsys, *flags, **changes) -> str:
    assert main(["run", str(write_spec(**changes)), "--dry-run", *flags]) == 0
    return capsys.readouterr().out


def test_a_dry_run_counts_this_machine(laptop, write_spec, capsys):
    out = _dry_run(write_spec, capsys, seeds=3, max_concurrent=0)  # 6 trials of 3 s, 1 CPU each
    assert "On this machine: 2 CPUs, no GPU -> 2 trials at a time (each takes 1 CPU)." in out
    assert "6 trials x 3s (seconds budget), 2 at a time -> the busiest slot trains for about 9s" in out
    assert "0.00 GPU-hours" in out


def test_a_dry_run_for_a_stated_machine_with_8_gpus(laptop, write_spec, capsys):
    out = _dry_run(write_spec, capsys, "--gpus", "8", seeds=10, max_concurrent=0, resources={"cpus": 1, "gpus": 1})
    assert "On a stated machine: 8 GPUs -> 8 trials at a time (each takes 1 CPU and 1 GPU)." in out
    busiest = "the busiest slot trains for about 9s"  # 3 rounds: 8, 8, 4
    assert f"20 trials x 3s (seconds budget), 8 at a time -> {busiest}" in out
    assert "0.02 GPU-hours" in out  # 20 x 3 s


def test_a_dry_run_says_plainly_that_gpu_trials_cannot_run_on_a_machine_without_one(laptop, write_spec, capsys):
    out = _dry_run(write_spec, capsys, resources={"cpus": 1, "gpus": 1})
    said = "On this machine: 2 CPUs, no GPU -> no trial can run (each trial wants resources.gpus=1 and there is none)"
    assert said in out
    assert "2 trials x 3s (seconds budget): none can start on this machine" in out and "at a time ->" not in out


def test_a_counted_budget_on_gpus_gets_a_wall_clock_at_the_stated_rate(laptop, write_spec, capsys):
    out = _dry_run(
        write_spec, capsys, "--gpus", "2", budget={"kind": "steps", "value": 1000}, resources={"cpus": 1, "gpus": 1}
    )
    assert "2 trials x 1000 steps (steps budget), 2 at a time -> the busiest slot trains for about 1000 steps" in out
    assert "2 at a time, about " in out and " wall clock at that rate per trial" in out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--gpus", "8"], "--gpus states a machine for --dry-run's estimate: add --dry-run, or drop --gpus."),
        (["--cpus", "8"], "--cpus states a machine for --dry-run's estimate: add --dry-run, or drop --cpus."),
        (["--dry-run", "--gpus", "2", "--address", "auto"], "--gpus/--cpus state a machine and --address measures"),
        (["--dry-run", "--cpus", "0"], "--cpus 0 is invalid: expected an integer >= 1."),
    ],
)
def test_stated_machine_flags_get_one_sentence(flags, message, write_spec, capsys):
    assert main(["run", str(write_spec()), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_dry_run_with_address_counts_the_clusters_live_nodes(ray_session, write_spec, capsys):
    nodes = [n for n in ray_session.nodes() if n["Alive"]]
    cpus = sum(n["Resources"].get("CPU", 0) for n in nodes)
    out = _dry_run(write_spec, capsys, "--address", "auto", max_concurrent=0)
    assert f"On the cluster at auto: {cpus:g} CPUs, no GPU -> {min(2, int(cpus))} trials at a time" in out
    assert ray_session.is_initialized()  # the dry run joined the running Ray and left it running

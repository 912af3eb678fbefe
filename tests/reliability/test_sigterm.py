"""`kill PID` (SIGTERM, as a batch scheduler sends on preemption) stops a study as Ctrl-C does: the driver says
how to resume, exits 130, and takes the Ray it started down with it. Before, the driver died alone and its trial
processes (Ray workers, in sessions of their own, so a kill of the driver's process group misses them) went on
training and writing rows; a resume would have run beside them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from study.cli import main
from tests.reliability.helpers import REPO, final_trials, raw_rows, wait_for

pytestmark = pytest.mark.integration


def _children() -> dict[int, int]:
    """pid -> parent pid of every process visible in /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _descendants(root: int) -> set[int]:
    parents, found, frontier = _children(), set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc (Linux)")
def test_sigterm_stops_the_study_and_its_ray_then_resume_finishes_it(write_spec, tmp_path, ray_tmp, capsys):
    spec = write_spec(budget={"kind": "seconds", "value": 20}, max_concurrent=1)
    study_dir = tmp_path / "results" / "tiny"
    driver = subprocess.Popen(
        [sys.executable, "-m", "study.cli", "run", str(spec), "--ray-temp-dir", ray_tmp],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(lambda: (study_dir / "results" / "metrics").is_dir() and len(raw_rows(study_dir, "metrics")) > 0,
                 240, "the first evaluation point")  # fmt: skip
        ray_processes = _descendants(driver.pid)
        assert ray_processes, "no Ray process under the driver"
        driver.send_signal(signal.SIGTERM)
        out, _ = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(30)
    assert driver.returncode == 130, out
    assert f"wt-study resume {study_dir}" in out
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in ray_processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = sorted(p for p in ray_processes if _alive(p))
    assert not left, f"processes of the stopped study still run: {left}"

    assert main(["resume", str(study_dir), "--ray-temp-dir", ray_tmp + "b"]) == 0
    assert set(final_trials(study_dir).status) == {"completed"}
    capsys.readouterr()

"""Make the upgrade fixture: a small study started by a release, killed mid-run (kill -9 of the driver's whole
process group), copied out as that release left it.

    python tests/upgrade/make_release_fixture.py RELEASE_CHECKOUT OUT_DIR

RELEASE_CHECKOUT is a checkout of the release (e.g. `git worktree add /tmp/rel <sha>`); the study runs there with
that release's `wt-study run` (only the command line is used, so this script works with any release). The
fixture has four trials run one at a time: two finished, one interrupted after its second checkpoint, one
never started. OUT_DIR/<name> receives the study directory (study.yaml, results/, tune/), with each results
directory's files merged into one in write order (what the sink's own compaction does at the end of a study, and
the reading rules make equivalent), so that the fixture stays small.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SPEC = """\
name: upgrade
storage: {storage}
data: {{corpus: tests/data/tinyshakespeare-excerpt.txt}}
budget: {{kind: steps, value: 1500}}
eval: {{every_steps: 500, val_tokens: 256}}
checkpoint_every_s: 0.6
train: {{batch_size: 4, lr: 0.002, threads: 1}}
model: {{n_embd: 8, n_layer: 1, n_head: 2, dropout: 0.0}}
axes: {{arch: [standard, worker], worker_interval: [4], seq_len: [32]}}
seeds: 2
resources: {{cpus: 1}}
max_concurrent: 1
"""


def trial_rows(study: Path) -> dict:
    rows: dict = {}
    for path in sorted((study / "results" / "trials").glob("[!.]*.parquet")):
        for row in pq.read_table(path, columns=["trial_id", "status"]).to_pylist():
            rows[row["trial_id"]] = row["status"]
    return rows


def checkpoints(study: Path, trial_id: str) -> int:
    return len(list((study / "tune").glob(f"{trial_id}*/checkpoint_*")))


def compact(study: Path) -> None:
    """Merge each results directory's files into one named after the last, in name (= write) order."""
    for kind in ("metrics", "trials"):
        files = sorted((study / "results" / kind).glob("[!.]*.parquet"))
        merged = pa.concat_tables([pq.read_table(f) for f in files])
        pq.write_table(merged, files[-1].with_name(files[-1].stem + "_compacted.parquet"))
        for f in files:
            f.unlink()


def main(release: Path, out: Path) -> int:
    work = Path(tempfile.mkdtemp(prefix="wtfx-"))
    spec = work / "spec.yaml"
    spec.write_text(SPEC.format(storage=work / "r"))
    study = work / "r" / "upgrade"
    env = {**os.environ, "PYTHONPATH": str(release), "TUNE_GLOBAL_CHECKPOINT_S": "0.5", "WT_RAY_TMPDIR": str(work)}
    driver = subprocess.Popen(
        [sys.executable, "-m", "study.cli", "run", str(spec)], cwd=release, env=env, start_new_session=True
    )
    deadline, since = time.monotonic() + 600, None
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.05)
            rows = trial_rows(study) if (study / "results" / "trials").exists() else {}
            done = [t for t, s in rows.items() if s == "completed"]
            running = [t for t, s in rows.items() if s == "running"]
            if len(done) >= 2 and running and checkpoints(study, running[0]) >= 2:
                since = since or time.monotonic()
                if time.monotonic() - since >= 1.0:  # Tune's experiment state (every 0.5 s) records the checkpoint
                    break
        else:
            raise SystemExit("the study finished or timed out before the moment to kill it")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    rows = trial_rows(study)
    print(json.dumps(rows, indent=1))
    target = out / "upgrade"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(study, target, symlinks=False)
    compact(target)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()))

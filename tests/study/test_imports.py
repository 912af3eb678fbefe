"""`wt-study status` and `wt-study analyze` never import torch or Ray: they read Parquet on machines that never
trained anything, and start in well under a second."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from study.config.specfile import dump_spec, parse_spec
from study.results.sink import ParquetSink
from tests.conftest import REPO
from tests.study.conftest import TINY_SPEC, deep_update
from wt_base.layout import SPEC_FILE
from wt_base.storage import resolve, write_text_atomic

HEAVY = ("torch", "ray")


def _tiny_study(storage) -> str:
    """A study directory as the driver leaves it: the saved spec and one flush of trial and metric rows."""
    spec = parse_spec(deep_update(TINY_SPEC, {"storage": str(storage)}))
    location = resolve(spec.storage).join(spec.name)
    write_text_atomic(location, SPEC_FILE, dump_spec(spec))
    sink = ParquetSink(location, spec.name)
    for trial_id, status in (("worker_a", "completed"), ("standard_b", "running")):
        arch = trial_id.split("_")[0]
        sink.update_trial(trial_id, status=status, arch=arch, budget_value=3.0, train_time_s=1.5, wall_time_s=2.0)
        sink.add_metric(
            {"trial_id": trial_id, "attempt": 1, "resumed_from_step": 0, "step": 10, "val_loss": 3.0, "is_final": False}
        )
    sink.flush()
    return location.path


def _run_cli(*argv: str) -> tuple[int, str, list[str]]:
    """Run `wt-study ARGV` in a fresh interpreter; its exit code, stdout and the heavy modules it imported."""
    code = textwrap.dedent(
        f"""
        import sys
        from study.cli import main
        try:
            code = main({list(argv)!r})
        except SystemExit as exc:  # --help
            code = exc.code
        print("HEAVY=" + ",".join(m for m in {HEAVY!r} if m in sys.modules))
        sys.exit(code)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    out = done.stdout
    heavy = out.rsplit("HEAVY=", 1)[1].strip()
    return done.returncode, out, [m for m in heavy.split(",") if m]


def test_status_of_a_study_imports_neither_torch_nor_ray(tmp_path):
    study = _tiny_study(tmp_path / "results")
    code, out, heavy = _run_cli("status", study)
    assert code == 0, out
    assert "Study tiny: 2 trials | 1 completed, 0 stopped, 1 running" in out
    assert heavy == []


def test_help_of_status_and_analyze_imports_neither_torch_nor_ray():
    for command in ("status", "analyze"):
        code, out, heavy = _run_cli(command, "--help")
        assert code == 0 and "usage: wt-study" in out
        assert heavy == [], command


def test_the_analysis_modules_import_neither_torch_nor_ray():
    """Everything `wt-study analyze` runs once it has parsed its flags (analysis.cli imports these in run)."""
    code = "import sys, analysis.cli, analysis.load, analysis.report; print([m for m in %r if m in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", code % (HEAVY,)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

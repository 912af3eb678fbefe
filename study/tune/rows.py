"""The static part of a trial's row in trials/*.parquet: its configuration, size, cost and code version."""

from __future__ import annotations

import functools
import json
import math
import subprocess
from pathlib import Path

from study.config.space import ID_SCHEME, Trial, seed_role
from study.config.spec import StudySpec
from wt_base.fields import FIELDS, lookup
from wt_model import archs


@functools.cache
def git_sha() -> str:
    """The commit of the code running the study ("" when not in a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 (git from PATH, as the user runs it; fixed arguments)
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def pending_row(trial: Trial, spec: StudySpec, token_unit: str | None = None) -> dict:
    """Everything known about a trial of `spec` before it runs (the sink adds trial_id and study); `token_unit`:
    the corpus's unit ("char" or "byte", study.train.corpora.MappedCorpus.unit)."""
    from wt_model.flops import count_params, training_flops_per_token

    run = trial.run
    model = run.model
    params = count_params(model)
    stored = trial.to_dict()
    config = {f.column: lookup(stored, f.path) for f in FIELDS}  # the axis table's columns
    for name in archs.ARM_FIELDS:
        if not archs.applies(name, model.arch):
            config[name] = None  # not a setting of this architecture
    config["ffn_hidden"] = model.ffn_width  # the width the model has (config_json keeps 0 for 4 * n_embd)
    return {
        "status": "pending",
        **config,
        "seed_role": seed_role(spec, run.train.seed),
        "equivalence_margin": spec.equivalence_margin,
        "allow_shared_device": spec.allow_shared_device,
        "target_loss": spec.target_loss,
        "token_unit": token_unit,
        "id_scheme": ID_SCHEME,
        "config_json": json.dumps(stored, sort_keys=True),
        "n_params": params.total,
        "n_params_non_embedding": params.non_embedding,
        "flops_per_token": training_flops_per_token(model, model.block_size),
        "steps": 0,
        "tokens": 0,
        "train_time_s": 0.0,
        "wall_time_s": 0.0,
        "restarts": 0,
        "git_sha": git_sha(),
        "error": "",
        "note": "",
    }


def end_fields(row: dict) -> dict:
    """The status (and why) of a trial Tune has ended, from its row. The trainable's last report sets completed or
    diverged; a trial ended after its final evaluation but before that report (ASHA stops a trial that reaches
    max_t) finished all the same; one ended before its final evaluation was stopped early by the scheduler."""
    if row.get("status") in ("completed", "diverged"):
        return {"status": row["status"]}
    final_loss = row.get("val_loss")  # set only by the final evaluation (NaN when the run diverged)
    if final_loss is None:
        return {"status": "stopped", "note": "stopped early by the scheduler"}
    if math.isfinite(final_loss):
        return {"status": "completed"}
    return {"status": "diverged", "error": "the final evaluation's loss is not finite"}

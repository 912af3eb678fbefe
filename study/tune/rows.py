"""The static part of a trial's row in trials/*.parquet: its configuration, size, cost and code version."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

from study.config.space import Trial, seed_role
from study.config.spec import StudySpec


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


def pending_row(trial: Trial, spec: StudySpec) -> dict:
    """Everything known about a trial of `spec` before it runs (the sink adds trial_id and study)."""
    from wt_model.flops import count_params, training_flops_per_token

    run = trial.run
    model = run.model
    params = count_params(model)
    return {
        "status": "pending",
        "arch": trial.arch,
        "attention": model.attention,
        "init": model.init,
        "worker_interval": model.worker_interval if model.arch == "worker" else None,
        "random_worker_phase": model.random_worker_phase,
        "seq_len": model.block_size,
        "n_embd": model.n_embd,
        "n_layer": model.n_layer,
        "n_head": model.n_head,
        "ffn_hidden": model.ffn_width,  # the width the model has (config_json keeps 0 for 4 * n_embd)
        "conv_kernel": model.conv_kernel if model.arch == "worker" else None,
        "dropout": model.dropout,
        "batch_size": run.train.batch_size,
        "lr": run.train.lr,
        "weight_decay": run.train.weight_decay,
        "schedule": run.train.schedule,
        "warmup_frac": run.train.warmup_frac,
        "seed": run.train.seed,
        "seed_role": seed_role(spec, run.train.seed),
        "equivalence_margin": spec.equivalence_margin,
        "allow_shared_device": spec.allow_shared_device,
        "budget_kind": run.budget.kind,
        "budget_value": run.budget.value,
        "count_eval_in_budget": run.budget.count_eval_in_budget,
        "eval_protocol": run.eval.protocol,
        "corpus": run.data.corpus,
        "config_json": json.dumps(trial.to_dict(), sort_keys=True),
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

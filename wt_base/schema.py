"""The Parquet contract between the study and the analysis (see docs/results.md).

Layout under `<storage>/<study_name>/results/` (file names in wt_base.layout):
  metrics/*.parquet : one row per evaluation point, keyed by (trial_id, step)
  trials/*.parquet  : one row per trial state, keyed by trial_id
Readers keep the last written row per key (order: file name, then row order). Files are written atomically.
A trial resumed from a checkpoint at step S redoes the work after S: rows of an earlier `attempt` with a step
above a later attempt's `resumed_from_step` are superseded and readers drop them (analysis.load.superseded).

This module imports nothing heavier than pyarrow so that analysis runs on machines without torch or Ray.
"""

from __future__ import annotations

import pyarrow as pa

from wt_base.fields import FIELDS

SCHEMA_VERSION = 3  # 2: init, conv_kernel, weight_decay, warmup_frac, seed_role, equivalence_margin,
# allow_shared_device, epochs, train_eval_loss, train_minus_val, status "stopped". 3: id_scheme; the configuration
# columns in the axis table's order; metrics targets, target_epochs, eval_time_s; trials dtype, compile_mode,
# attention_backend, threads. Readers accept older versions (new columns are null there).

METRICS_KEY = ("trial_id", "step")
TRIALS_KEY = ("trial_id",)

TRIAL_STATUSES = ("pending", "running", "completed", "stopped", "diverged", "failed")
# "stopped": ended early by a scheduler (ASHA); its last loss is never a final loss.
FINISHED_STATUSES = ("completed", "stopped", "diverged")  # never run again (resume skips them)
UNFINISHED_STATUSES = ("pending", "running")  # a study with such trials is partial

_ARROW_TYPES = {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}
CONFIG_COLUMNS = [(f.column, _ARROW_TYPES[f.kind]) for f in FIELDS]

METRICS_SCHEMA = pa.schema(
    [
        ("schema_version", pa.int32()),
        ("study", pa.string()),
        ("trial_id", pa.string()),
        ("step", pa.int64()),  # optimizer steps done when evaluated
        ("tokens", pa.int64()),  # training tokens consumed (batch_size * seq_len * step): input positions
        ("targets", pa.int64()),  # supervised targets: positions the training loss was taken at (worker rows)
        ("train_time_s", pa.float64()),  # training-step time only (the budget clock)
        ("wall_time_s", pa.float64()),  # everything since the trial started, across resumes
        ("flops", pa.float64()),  # analytic training FLOPs spent (wt_model.flops convention)
        ("lr", pa.float64()),  # learning rate at the last step
        ("train_loss", pa.float64()),  # mean training loss since the previous evaluation (the model's own loss)
        ("val_loss", pa.float64()),  # mean next-token loss over all validation positions (the fair metric)
        ("val_loss_seed", pa.float64()),  # the seed's metric: worker positions only for the worker model
        ("val_bpc", pa.float64()),  # val_loss in bits per character
        ("train_eval_loss", pa.float64()),  # loss on fixed training windows, eval mode, same positions as val_loss
        ("train_minus_val", pa.float64()),  # train_eval_loss - val_loss: below 0 when the model overfits
        ("epochs", pa.float64()),  # passes over the training split so far (training tokens / split length)
        ("target_epochs", pa.float64()),  # the same counted in supervised targets (targets / split length)
        ("val_tokens", pa.int64()),  # validation positions this evaluation covered
        ("eval_time_s", pa.float64()),  # the time this evaluation's validation pass took
        ("tokens_per_s", pa.float64()),  # training tokens per second of train_time_s since the last evaluation
        ("is_final", pa.bool_()),  # the end-of-run evaluation (whole validation split)
        ("attempt", pa.int64()),  # id of the process lifetime that produced the row (its start time, in us)
        ("resumed_from_step", pa.int64()),  # the checkpoint step that attempt resumed from (0: from scratch)
        ("reported_at", pa.timestamp("us", tz="UTC")),  # when the driver received the row
    ]
)

TRIALS_SCHEMA = pa.schema(
    [
        ("schema_version", pa.int32()),
        ("study", pa.string()),
        ("trial_id", pa.string()),
        ("status", pa.string()),  # one of TRIAL_STATUSES
        # configuration: the axis table's columns (wt_base.fields), then the spec-level settings of the trial
        *CONFIG_COLUMNS,
        ("seed_role", pa.string()),  # "test" (verdicts) or "tune" (only chooses tuned settings, spec tune_seeds)
        ("equivalence_margin", pa.float64()),  # nats: |worker - standard| below it counts as equivalent (TOST)
        ("allow_shared_device", pa.bool_()),  # seconds budgets: trials were allowed to share a GPU or a core
        ("target_loss", pa.float64()),  # the spec's pre-registered time-to-target loss (null: none)
        ("token_unit", pa.string()),  # "char" or "byte" (enwik8): a loss in bits is bits per character or byte
        ("id_scheme", pa.int32()),  # how trial_id was made (study.config.space.ID_SCHEME); null: scheme 1
        ("config_json", pa.string()),  # the full RunConfig as JSON
        # model size and cost
        ("n_params", pa.int64()),
        ("n_params_non_embedding", pa.int64()),
        ("flops_per_token", pa.float64()),  # analytic training FLOPs per token
        # outcome
        ("steps", pa.int64()),
        ("tokens", pa.int64()),
        ("train_time_s", pa.float64()),
        ("wall_time_s", pa.float64()),
        ("val_loss", pa.float64()),  # final (whole validation split)
        ("val_loss_seed", pa.float64()),
        ("restarts", pa.int64()),  # times the trial was resumed from a checkpoint
        # environment
        ("device_name", pa.string()),
        # what bought the steps (study.train.device.execution_settings): a seconds budget's cell is keyed by them
        ("dtype", pa.string()),  # float32 on a CPU, bfloat16 (autocast) on CUDA
        ("compile_mode", pa.string()),  # the resolved train.compile: off, default or reduce-overhead
        ("attention_backend", pa.string()),  # naive, sdpa, sdpa+cpu-kernel or flex (wt_model.layers)
        ("threads", pa.int64()),  # torch CPU threads of the trial
        ("node_id", pa.string()),
        ("gpu_ids", pa.string()),  # comma-separated accelerator ids the trial saw ("" on CPU)
        ("torch_version", pa.string()),
        ("ray_version", pa.string()),
        ("git_sha", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("updated_at", pa.timestamp("us", tz="UTC")),
        ("error", pa.string()),  # why the trial failed or diverged ("" otherwise)
        ("note", pa.string()),  # anything else a reader should know (e.g. stopped early by the scheduler)
    ]
)


def conform(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Build a table with exactly `schema`'s columns from row dicts (missing keys become nulls)."""
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.Table.from_pydict(columns, schema=schema)

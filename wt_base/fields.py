"""The configuration fields that are trials columns, in one table (the axis table).

Each entry names a trials column, its path in a trial's stored configuration (`config_json`: {"trial_id", "arch",
"run": {"model", "train", "budget", "eval", "data", ...}}), its type, whether a spec may sweep it (an axis) and
whether `wt-study status` lists it beside a trial id where trials differ by it (the id itself shows the arch,
interval, seq_len, n_embd and seed). Generated from it: the spec's axes (study.config.spec), the configuration
columns of the trial rows (study.tune.rows) and of the trials schema (wt_base.schema), the analysis' column
paths (analysis.configs) and status's settings. A new axis is one entry here (and its config field).

Which architectures a field applies to is the architecture registry's business (wt_model.archs): a field one
architecture does not read (the worker interval of the standard model) is null in its row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    column: str  # the trials column (and the spec's axis name)
    path: str  # dotted path in config_json
    kind: type  # int, float, str or bool
    axis: bool = False  # a spec may sweep it (axes:, sample:)
    shown: bool = False  # status lists it beside the trial id where trials differ by it
    doc: str = ""  # what the column holds, where the name does not say it

    @property
    def section(self) -> str | None:
        """The run config section the field lives in ("model", "train", ...); None for the arch label."""
        parts = self.path.split(".")
        return parts[1] if len(parts) == 3 else None

    @property
    def name(self) -> str:
        """The field's name in its section's dataclass."""
        return self.path.rsplit(".", 1)[-1]


FIELDS = (
    Field("arch", "arch", str, axis=True, doc="the spec label (wt_model.archs.LABELS)"),
    Field("attention", "run.model.attention", str, axis=True, shown=True),
    Field("init", "run.model.init", str, axis=True, shown=True, doc="torch (the seed's) or nanogpt"),
    Field("worker_interval", "run.model.worker_interval", int, axis=True, doc="null where the arch has none"),
    Field("random_worker_phase", "run.model.random_worker_phase", bool),
    Field("seq_len", "run.model.block_size", int, axis=True),
    Field("n_embd", "run.model.n_embd", int, axis=True),
    Field("n_layer", "run.model.n_layer", int, axis=True, shown=True),
    Field("n_head", "run.model.n_head", int, axis=True, shown=True),
    Field("ffn_hidden", "run.model.ffn_hidden", int, axis=True, doc="the FFN width the model has (never 0)"),
    Field("conv_kernel", "run.model.conv_kernel", int, axis=True, shown=True, doc="null where the arch has none"),
    Field("dropout", "run.model.dropout", float, axis=True, shown=True),
    Field("batch_size", "run.train.batch_size", int, axis=True, shown=True),
    Field("lr", "run.train.lr", float, axis=True, shown=True),
    Field("weight_decay", "run.train.weight_decay", float, axis=True, shown=True),
    Field("schedule", "run.train.schedule", str, axis=True, shown=True),
    Field("warmup_frac", "run.train.warmup_frac", float, axis=True, shown=True),
    Field("seed", "run.train.seed", int),
    Field("budget_kind", "run.budget.kind", str),
    Field("budget_value", "run.budget.value", float, axis=True, shown=True, doc="in its kind's unit"),
    Field("count_eval_in_budget", "run.budget.count_eval_in_budget", bool),
    Field("eval_protocol", "run.eval.protocol", str),
    Field("corpus", "run.data.corpus", str),
)
BY_COLUMN = {f.column: f for f in FIELDS}
AXES = {f.column: f for f in FIELDS if f.axis}  # the spec's grid and sample axes
SHOWN = tuple(f.column for f in FIELDS if f.shown)
# The optimisation settings each arm may choose for itself on its tune seeds: the axes a search may sample
# (study.config.sampling.SEARCHABLE) and the tuned fields of the analysis (analysis.configs.TUNED_FIELDS, which
# adds the train settings no axis sets)
TUNED = ("lr", "weight_decay", "warmup_frac", "schedule", "dropout")

# Settings that leave the math of a run unchanged (where and how fast it runs, where it keeps its files): never
# part of a trial id or of a configuration. The seed is not here: it is part of the id, and the analysis leaves
# it out of a configuration itself (two trials that differ only by seed are seeds of one configuration).
EXECUTION_PATHS = (
    "run.train.device",
    "run.train.threads",
    "run.train.compile",
    "run.data.cache_dir",
    "run.checkpoint_every_s",
)


def lookup(config: dict, path: str):
    """The value at dotted `path` in a nested config mapping (None where a part is missing)."""
    node = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node

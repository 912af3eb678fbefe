"""The machine-profile contract: how long one training step of a shape takes on one machine.

`wt-study bench --out` / `--for-study` (study.cli.bench) writes profiles; the analysis (analysis.profiles) reads,
checks and projects them. A profile row is keyed by PROFILE_KEY: the machine part (MACHINE_KEY: device, dtype,
compile mode, threads, torch) and the shape part (SHAPE_KEY: the trials columns a step's cost depends on, with
the trials' meaning: `arch` is the spec label, `worker_interval` and `conv_kernel` are null where the
architecture has none, `ffn_hidden` is the FFN's actual width). `dropout` is part of the shape because it
changes a step's cost (on a CPU a dropout above 0 selects another attention kernel).

Shipped hand-written profiles (published speeds) live in SHIPPED_DIR, one YAML file per machine; `wt-study
analyze --timing NAME` takes a shipped profile's name (its file stem) as well as a path. Imports nothing heavier
than pyarrow.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

PROFILE_SCHEMA_VERSION = 1
SHAPE_KEY = ["arch", "worker_interval", "seq_len", "n_embd", "n_layer", "n_head", "ffn_hidden", "batch_size"]
SHAPE_KEY += ["attention", "dropout", "conv_kernel"]
MACHINE_KEY = ["device_name", "dtype", "compile", "threads", "torch_version"]
PROFILE_KEY = ["device_name", "dtype", *SHAPE_KEY, "compile", "threads", "torch_version"]
DTYPES = ("float32", "bfloat16", "unknown")
COMPILE_MODES = ("off", "default", "reduce-overhead")
STEP_TIME_COLUMNS = ["step_time_s_median", "step_time_s_p10", "step_time_s_p90", "step_time_s_n"]
SHIPPED_DIR = Path(__file__).resolve().parent / "profiles"  # package data: <name>.yaml per shipped machine

PROFILE_SCHEMA = pa.schema(
    [
        ("schema_version", pa.int32()),  # PROFILE_SCHEMA_VERSION when written
        ("device_name", pa.string()),  # "NVIDIA H100 80GB HBM3", "cpu (2 cores)", or a hand-written machine's name
        ("dtype", pa.string()),  # one of DTYPES: the training math ("bfloat16" = bf16 autocast)
        ("arch", pa.string()),  # the trials' arch label: "standard", "worker", "worker-random-phase", ...
        ("worker_interval", pa.int64()),  # null for archs without one
        ("seq_len", pa.int64()),
        ("n_embd", pa.int64()),
        ("n_layer", pa.int64()),
        ("n_head", pa.int64()),
        ("ffn_hidden", pa.int64()),  # the FFN's actual width (the trials column; never 0)
        ("batch_size", pa.int64()),
        ("attention", pa.string()),  # "sdpa", "naive", "flex"
        ("dropout", pa.float64()),  # the model's dropout (0 and above 0 run different kernels)
        ("conv_kernel", pa.int64()),  # the token mixer's width; null for archs without a mixer
        ("compile", pa.string()),  # one of COMPILE_MODES (resolved: never "auto")
        ("threads", pa.int64()),  # torch CPU threads; null when unknown
        ("torch_version", pa.string()),  # "unknown" when not known
        ("step_time_s_median", pa.float64()),  # seconds per training step (forward, backward, optimizer)
        ("step_time_s_p10", pa.float64()),  # 10th percentile of the timed samples
        ("step_time_s_p90", pa.float64()),  # 90th percentile
        ("step_time_s_n", pa.int64()),  # timed samples (0: spread unknown, p10 = p90 = median)
        ("eval_time_per_token_s", pa.float64()),  # seconds per validation position evaluated; null if unmeasured
        ("tokens_per_s", pa.float64()),  # training tokens per second at the median step time
        ("mfu", pa.float64()),  # model FLOP utilisation at the median (bench convention); null if unknown
        ("source", pa.string()),  # "measured by wt-study bench 0.1.0 (wall clock)", "the original's README table"
        ("measured_at", pa.timestamp("us", tz="UTC")),  # null if unknown
    ]
)


def shipped_profiles() -> dict[str, Path]:
    """Name -> file of every shipped profile (SHIPPED_DIR/<name>.yaml)."""
    if not SHIPPED_DIR.is_dir():
        return {}
    return {path.stem: path for path in sorted(SHIPPED_DIR.glob("*.yaml"))}

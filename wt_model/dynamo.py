"""torch._dynamo settings the models and the loop need, scoped to the calls that need them.

A compiled model makes one graph per (shape, worker phase, train or eval), and the worker's FlexAttention one
per phase: more than Dynamo's default recompile limit (8), past which it silently falls back to eager code.
`recompile_limit(n)` raises the limit for the calls it wraps and puts it back after, so importing or using
wt_model never changes a process-wide setting. The setting is `recompile_limit` from torch 2.6 on and
`cache_size_limit` before.
"""

from __future__ import annotations

import torch._dynamo


def limit_setting() -> str:
    """The name of Dynamo's recompile-limit setting in this torch."""
    return "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"


def recompile_limit(n: int):
    """A context manager (and decorator) under which Dynamo compiles up to `n` graphs per function."""
    config, name = torch._dynamo.config, limit_setting()
    return config.patch(**{name: max(getattr(config, name), n)})

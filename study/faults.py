"""Fault injection for reliability tests and chaos drills, off unless WT_FAULTS is set.

WT_FAULTS is JSON mapping a substring of a trial id to a fault:
  {"worker_k4": {"kind": "raise", "at_report": 2, "first_attempt_only": true}}
kinds: "raise" (RuntimeError), "oom" (torch.cuda.OutOfMemoryError, as a GPU running out of memory raises),
"memory" (MemoryError), "exit" (the trial's process dies at once, as with SIGKILL or a lost node).
The fault fires when the trial makes its `at_report`-th report (1-based) of an attempt; with
`first_attempt_only` only before any restart, so a retried trial can then finish.
"""

from __future__ import annotations

import json
import os

ENV = "WT_FAULTS"
KINDS = ("raise", "oom", "memory", "exit")


def fault_for(trial_id: str) -> dict | None:
    raw = os.environ.get(ENV)
    if not raw:
        return None
    for pattern, fault in json.loads(raw).items():
        if pattern in trial_id:
            if fault.get("kind") not in KINDS:
                raise ValueError(f"{ENV}: kind={fault.get('kind')!r} is invalid: expected one of {', '.join(KINDS)}.")
            return fault
    return None


def maybe_fire(fault: dict | None, report_index: int, restarts: int) -> None:
    """Fire `fault` if this report is the one it waits for."""
    if fault is None or report_index != int(fault.get("at_report", 1)):
        return
    if fault.get("first_attempt_only", False) and restarts > 0:
        return
    kind = fault["kind"]
    if kind == "exit":
        os._exit(137)
    if kind == "memory":
        raise MemoryError("injected fault: out of host memory")
    if kind == "oom":
        import torch

        raise torch.cuda.OutOfMemoryError("injected fault: CUDA out of memory. Tried to allocate 2.00 GiB")
    raise RuntimeError("injected fault: the trial raised")

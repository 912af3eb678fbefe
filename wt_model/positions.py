"""Which positions are workers: the one definition, in plain ints (no torch), for the model, FLOPs and evaluation.

At phase `offset` (0 <= offset < k) the regular workers are the positions p with p % k == (k - 1 - offset) % k;
the last position T - 1 is always a worker too, so every prefix ends in one (generation reads it).
"""

from __future__ import annotations


def regular_workers(T: int, k: int, offset: int = 0) -> range:
    """The regular worker positions of a length-T sequence at phase `offset` (may be empty when T < k)."""
    if not 0 <= offset < k:
        raise ValueError(f"worker_offset={offset!r} is invalid: expected an integer in [0, {k}).")
    return range((k - 1 - offset) % k, T, k)


def worker_position_list(T: int, k: int, offset: int = 0) -> list[int]:
    """Every worker position at phase `offset`, sorted: the regular workers, then T - 1 if it is not one."""
    positions = list(regular_workers(T, k, offset))
    if not positions or positions[-1] != T - 1:
        positions.append(T - 1)
    return positions

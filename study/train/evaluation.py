"""Evaluation of one run: the fixed windows it is evaluated on, the evaluation passes, and the record of one
evaluation point (a row of the metrics table)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import torch

from study.config.run import EvalConfig
from study.train.corpora import MappedCorpus
from study.train.data import gather_windows, seed_window_starts, stream_window_starts
from wt_model.evaluate import loss_sums


@dataclass(frozen=True)
class EvalRecord:
    """One evaluation point (a row of the metrics table, without the study/trial keys)."""

    step: int  # optimizer steps done
    tokens: int  # training tokens consumed (input positions)
    targets: int  # supervised training targets (positions the loss was taken at: the worker model's worker rows)
    train_time_s: float  # training-step time (the budget clock)
    wall_time_s: float  # everything since the run started, across resumes
    flops: float  # analytic training FLOPs spent
    lr: float  # learning rate of the last step
    train_loss: float  # mean training loss since the previous evaluation
    val_loss: float  # mean next-token loss over all validation positions (the fair metric)
    val_loss_seed: float  # the seed's metric (worker positions of phase 0 for the worker model)
    val_bpc: float  # val_loss in bits per character
    train_eval_loss: float  # the same evaluation on fixed training windows (eval mode, all positions)
    train_minus_val: float  # train_eval_loss - val_loss: below 0 when the model starts to overfit
    epochs: float  # passes over the training split so far (training tokens / its length)
    target_epochs: float  # the same counted in supervised targets (targets / the split's length)
    val_tokens: int  # validation positions covered
    eval_time_s: float  # the time this evaluation's validation pass took
    tokens_per_s: float  # training tokens per train second since the previous evaluation
    is_final: bool  # the end-of-run evaluation

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, mapping: dict) -> EvalRecord:
        """A record as `to_dict` gave it, by this or an earlier version (fields added since are None: unknown)."""
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{name: mapping.get(name) for name in names})


class EvalWindows(NamedTuple):
    """The fixed windows (N, T+1) of one run, on its device."""

    val: torch.Tensor  # periodic evaluations
    final: torch.Tensor  # the final evaluation (the whole val split with `final_full`)
    train: torch.Tensor  # the training-split counterpart of `val` (overfitting shows as their gap)


def eval_windows(corpus: MappedCorpus, seq_len: int, ev: EvalConfig, device: torch.device) -> EvalWindows:
    """`ev.val_tokens` of non-overlapping validation windows, or the seed's stride-1 ones with protocol "seed"
    (then the final evaluation uses them too)."""
    n_val = len(corpus.val)
    if ev.protocol == "seed":
        starts = seed_window_starts(n_val, seq_len, ev.val_tokens)
        final_starts = starts
    else:
        starts = stream_window_starts(n_val, seq_len, ev.val_tokens)
        final_starts = stream_window_starts(n_val, seq_len, None) if ev.final_full else starts
    train_starts = stream_window_starts(len(corpus.train), seq_len, ev.val_tokens)
    return EvalWindows(
        gather_windows(corpus.val, starts, seq_len, device),
        gather_windows(corpus.val, final_starts, seq_len, device),
        gather_windows(corpus.train, train_starts, seq_len, device),
    )


def evaluate_windows(model, windows: torch.Tensor, batch_size: int, autocast, forward=None) -> tuple[float, float]:
    """Mean loss over all positions and the seed's metric on `windows` (N, T+1); model left in train mode.
    `forward` runs the passes (the compiled model) when given; it sees every batch at `batch_size` rows, the
    shape it was compiled (and on CUDA recorded) for: a short last batch is padded with copies of its last row,
    which are left out of the sums. The sums stay on the device and are read once, at the end of the pass."""
    model.eval()
    sums = torch.zeros(2, dtype=torch.float64, device=windows.device)  # loss_sum_all, loss_sum_seed
    n_all = n_seed = 0
    with autocast():
        for i in range(0, len(windows), batch_size):
            chunk = windows[i : i + batch_size].long()  # (b, T+1)
            rows = len(chunk)
            if forward is not None and rows < batch_size:
                chunk = torch.cat([chunk, chunk[-1:].expand(batch_size - rows, -1)])  # (batch_size, T+1)
            losses = loss_sums(model, chunk[:, :-1], chunk[:, 1:], forward, rows)
            sums += losses.sums
            n_all, n_seed = n_all + losses.n_all, n_seed + losses.n_seed
    model.train()
    sum_all, sum_seed = sums.tolist()
    return sum_all / max(n_all, 1), sum_seed / max(n_seed, 1)

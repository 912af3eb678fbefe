"""The two models of the study (standard baseline and WorkerTransformer), their evaluation and FLOP counts.

PyTorch only: no Ray, no I/O.
"""

from __future__ import annotations

from torch import nn

from wt_model.compat import InplaceWorkerTransformer
from wt_model.config import ModelConfig
from wt_model.evaluate import EvalLosses, evaluate_batch
from wt_model.generate import generate
from wt_model.standard import StandardTransformer
from wt_model.worker import WorkerTransformer


def build_model(cfg: ModelConfig) -> nn.Module:
    """The model `cfg.arch` names, initialised as `cfg.init` says: PyTorch's module defaults (the seed's, the
    default) or nanoGPT's scheme. Seed torch yourself for reproducibility."""
    if cfg.arch == "worker":
        return WorkerTransformer(cfg)
    return StandardTransformer(cfg)


__all__ = [
    "EvalLosses",
    "InplaceWorkerTransformer",
    "ModelConfig",
    "StandardTransformer",
    "WorkerTransformer",
    "build_model",
    "evaluate_batch",
    "generate",
]

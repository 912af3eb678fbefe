"""The models of the study (every architecture of the registry, wt_model.archs: the standard baseline, the
WorkerTransformer, the token-mixer ablation), their evaluation, FLOP counts and the loader of the original's
checkpoints (wt_model.original).

PyTorch only: no Ray, no I/O. Imports are lazy (PEP 562): `from wt_model.config import ModelConfig` and
`wt_model.flops` never load torch, and `from wt_model import build_model` loads it only when asked, so tools
that only read configs or results (`wt-study status`, `wt-study analyze`) start without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from wt_model.compat import InplaceWorkerTransformer
    from wt_model.config import ModelConfig
    from wt_model.evaluate import EvalLosses, evaluate_batch
    from wt_model.generate import generate
    from wt_model.original import convert_original_state_dict, load_original
    from wt_model.standard import StandardTransformer
    from wt_model.worker import WorkerTransformer

# public name -> the module defining it, imported on first access
_LAZY = {
    "EvalLosses": "wt_model.evaluate",
    "InplaceWorkerTransformer": "wt_model.compat",
    "ModelConfig": "wt_model.config",
    "StandardTransformer": "wt_model.standard",
    "WorkerTransformer": "wt_model.worker",
    "convert_original_state_dict": "wt_model.original",
    "evaluate_batch": "wt_model.evaluate",
    "generate": "wt_model.generate",
    "load_original": "wt_model.original",
}


def build_model(cfg: ModelConfig) -> nn.Module:
    """The model of architecture `cfg.arch` (wt_model.archs), initialised as `cfg.init` says: PyTorch's module
    defaults (the seed's, the default) or nanoGPT's scheme. Seed torch yourself for reproducibility."""
    from wt_model.archs import model_class

    return model_class(cfg.arch)(cfg)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'wt_model' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "EvalLosses",
    "InplaceWorkerTransformer",
    "ModelConfig",
    "StandardTransformer",
    "WorkerTransformer",
    "build_model",
    "convert_original_state_dict",
    "evaluate_batch",
    "generate",
    "load_original",
]

"""The seed's constructor signature, so code written against the seed's `model.py` runs unchanged."""

from __future__ import annotations

from wt_model.config import ModelConfig
from wt_model.worker import WorkerTransformer


def InplaceWorkerTransformer(  # noqa: N802 - the seed's class name, kept for drop-in use
    vocab_size: int,
    block_size: int,
    dim: int,
    num_heads: int,
    num_layers: int,
    worker_interval: int = 4,
    dropout: float = 0.1,
    ffn_hidden: int = 0,
    attention: str = "sdpa",
    random_worker_phase: bool = False,
    init: str = "torch",
) -> WorkerTransformer:
    """Build the worker model with the seed's argument names; `model(idx, targets)` then returns
    (logits at worker rows, mean CE at worker positions) as the seed's model does. `init` is `ModelConfig.init`;
    its default, PyTorch's module defaults, is the seed's initialisation."""
    cfg = ModelConfig(
        arch="worker",
        vocab_size=vocab_size,
        block_size=block_size,
        n_embd=dim,
        n_head=num_heads,
        n_layer=num_layers,
        ffn_hidden=ffn_hidden,
        dropout=dropout,
        worker_interval=worker_interval,
        attention=attention,
        random_worker_phase=random_worker_phase,
        init=init,
    )
    return WorkerTransformer(cfg)

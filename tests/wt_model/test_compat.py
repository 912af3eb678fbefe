"""The seed's constructor and call convention work unchanged."""

from __future__ import annotations

import torch

from wt_model import InplaceWorkerTransformer, WorkerTransformer


def test_seed_readme_usage():
    torch.manual_seed(0)
    model = InplaceWorkerTransformer(
        vocab_size=1000, block_size=1024, dim=256, num_heads=4, num_layers=4, worker_interval=4
    )
    assert isinstance(model, WorkerTransformer)
    assert model.cfg.dropout == 0.1
    input_ids = torch.randint(0, 1000, (1, 1024))
    targets = torch.randint(0, 1000, (1, 1024))
    logits, loss = model(input_ids, targets)
    assert logits.shape == (1, 256, 1000)
    assert abs(loss.item() - torch.log(torch.tensor(1000.0)).item()) < 0.5  # near-uniform at init

"""The WorkerTransformer (the seed's in-place variant): only every k-th token, the "worker", is updated.

Per block, compared with `StandardBlock`:
- a causal depthwise Conv1d mixes each position with its k-1 predecessors; its RMSNorm replaces `norm1`;
- keys and values come from every position, queries and the gate only from worker rows;
- the attention output, the FFN and both residual adds touch worker rows only: non-worker rows of the
  residual stream keep their token embedding through the whole network.
The LM head runs on worker rows only, and the training loss is the mean CE at worker positions (the seed's).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.attention.flex_attention import BlockMask, create_block_mask

from wt_model.config import ModelConfig
from wt_model.fused import dropout_add
from wt_model.layers import (
    CausalDepthwiseConv,
    FeedForward,
    GatedAttention,
    PrefixMask,
    RMSNorm,
    Rotary,
    check_length,
    init_weights,
    next_token_loss,
)
from wt_model.positions import worker_position_list


def uses_flex(cfg: ModelConfig, device: torch.device) -> bool:
    """Whether the worker attention runs through FlexAttention's kernel: attention="flex" on CUDA (FlexAttention
    has no backward on a CPU, where "flex" runs as SDPA with the same dense mask)."""
    return cfg.attention == "flex" and device.type == "cuda"


def worker_block_mask(T: int, k: int, offset: int, device: torch.device) -> BlockMask:
    """FlexAttention's block mask of the worker attention at phase `offset`: worker i (at position pos[i])
    sees keys 0..pos[i]. pos[i] = min(first + i * k, T - 1) covers the regular workers and the last position."""
    first = (k - 1 - offset) % k
    n_workers = len(worker_position_list(T, k, offset))

    def sees(b, h, q_idx, kv_idx):
        return kv_idx <= torch.clamp(first + q_idx * k, max=T - 1)

    return create_block_mask(sees, None, None, n_workers, T, device=device)


class WorkerBlock(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.mixer = CausalDepthwiseConv(cfg.n_embd, cfg.conv_kernel)
        self.norm1 = RMSNorm(cfg.n_embd)
        self.attn = GatedAttention(cfg)
        self.norm2 = RMSNorm(cfg.n_embd)
        self.ffn = FeedForward(cfg)
        self.dropout = cfg.dropout

    def forward(
        self,
        x: torch.Tensor,
        x_w: torch.Tensor,
        pos: torch.Tensor,
        rope_w: tuple[torch.Tensor, torch.Tensor],
        rope_all: tuple[torch.Tensor, torch.Tensor],
        mask: PrefixMask,
    ) -> torch.Tensor:
        """x: the full stream (B, T, C); x_w = x[:, pos] (B, W, C). Returns the updated worker rows."""
        h = self.norm1(self.mixer(x))  # (B, T, C)
        h_w = h.index_select(1, pos)  # (B, W, C)
        x_w = dropout_add(x_w, self.attn(h_w, h, rope_w, rope_all, mask), self.dropout, self.training)
        return dropout_add(x_w, self.ffn(self.norm2(x_w)), self.dropout, self.training)


class WorkerTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.worker_emb = nn.Parameter(torch.empty(cfg.n_embd))  # marks worker rows before the first block
        self.rotary = Rotary(cfg.head_dim, cfg.block_size, cfg.rope_base)
        self.blocks = nn.ModuleList(WorkerBlock(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        init_weights(self, cfg)
        nn.init.normal_(self.worker_emb, mean=0.0, std=0.02)  # the seed's marker init, under either scheme
        self._block_masks: dict[tuple[int, str], tuple[BlockMask, ...]] = {}  # (T, device) -> per phase (prepare)

    def worker_positions(self, T: int, offset: int = 0, device: torch.device | None = None) -> torch.Tensor:
        """Sorted worker positions for phase `offset`: p % k == (k - 1 - offset) % k, plus always T - 1."""
        k = self.cfg.worker_interval
        if not 0 <= offset < k:
            raise ValueError(f"worker_offset={offset} is invalid: expected an integer in [0, {k}).")
        first = (k - 1 - offset) % k
        pos = torch.arange(first, max(first, T), k, device=device)  # empty when first >= T
        last_is_regular = first <= T - 1 and (T - 1 - first) % k == 0  # plain ints: no device sync
        if not last_is_regular:
            pos = torch.cat([pos, torch.full((1,), T - 1, device=device)])  # a fill, not a host-to-device copy
        return pos

    def draw_phase(self) -> int:
        """A random worker phase in [0, k) for one training step with `random_worker_phase`, from torch's global
        RNG (reproducible from the seed, restored with torch's RNG state). A CPU draw: no device sync. The caller
        draws it and passes it as `worker_offset`, outside `forward`: a phase read inside `forward` would be a
        host value taken from a tensor (a graph break), and it sets the shapes (W) of the graph."""
        return int(torch.randint(self.cfg.worker_interval, ()).item())

    def prepare(self, T: int, device: torch.device) -> None:
        """Build, outside any compiled graph, what a forward at length T on `device` reads instead of building:
        FlexAttention's block masks of all k phases (attention="flex" on CUDA; nothing otherwise), once per
        (T, device). A compiled forward then takes the masks as graph inputs, with static addresses, so
        CUDA graphs replay them without copies. `study.train.compiled.compile_model` calls this before each
        compiled call (a dict lookup after the first)."""
        key = (T, str(device))
        if uses_flex(self.cfg, device) and key not in self._block_masks:
            k = self.cfg.worker_interval
            self._block_masks[key] = tuple(worker_block_mask(T, k, offset, device) for offset in range(k))
            for block_mask in self._block_masks[key]:
                for tensor in block_mask.as_tuple():
                    if isinstance(tensor, torch.Tensor):
                        torch._dynamo.mark_static_address(tensor)  # built once and never replaced

    def attention_mask(self, T: int, offset: int, pos: torch.Tensor) -> PrefixMask:
        """The worker attention mask at phase `offset` (pos: `worker_positions(T, offset)` on the device).

        Static shapes per (T, phase) and no device sync, so the compiler captures it. FlexAttention's block mask
        comes from `prepare` (called here in eager mode; under compile it has been called before, so the graph
        reads the mask and does not build it; a compiled call nobody prepared builds it inside the graph)."""
        dense = torch.arange(T, device=pos.device)[None, :] <= pos[:, None]  # (W, T): worker i sees j <= pos[i]
        n_keys = tuple(p + 1 for p in worker_position_list(T, self.cfg.worker_interval, offset))
        block_mask = None
        if uses_flex(self.cfg, pos.device):
            if not torch.compiler.is_compiling():
                self.prepare(T, pos.device)
            prepared = self._block_masks.get((T, str(pos.device)))
            if prepared is None:
                block_mask = worker_block_mask(T, self.cfg.worker_interval, offset, pos.device)
            else:
                block_mask = prepared[offset]
        return PrefixMask(dense=dense, n_keys=n_keys, block_mask=block_mask)

    def _phase(self, worker_offset: int | None) -> int:
        if worker_offset is not None:
            return int(worker_offset)
        if self.cfg.random_worker_phase and self.training:
            raise ValueError(
                "worker_offset=None is invalid for a training forward with random_worker_phase=True: draw the "
                "phase with model.draw_phase() and pass it as worker_offset (one graph per phase, no host sync)."
            )
        return 0

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, worker_offset: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """logits (B, W, V) at the worker rows of phase `worker_offset`; loss = mean CE at those rows.

        `worker_offset` None is phase 0, except in a training forward with `random_worker_phase`, which takes the
        phase from its caller (`draw_phase`): the phase is a plain int, so each phase is one whole graph."""
        B, T = idx.shape
        check_length(self.cfg, T)
        phase = self._phase(worker_offset)
        pos = self.worker_positions(T, phase, idx.device)  # (W,)
        mask = self.attention_mask(T, phase, pos)
        rope_w, rope_all = self.rotary.tables(pos), self.rotary.tables(T)

        x = self.tok_emb(idx)  # (B, T, C)
        x_w = x.index_select(1, pos) + self.worker_emb  # (B, W, C)
        for block in self.blocks:
            # Out-of-place scatter of the worker rows (autograd needs the old stream); skipped after the
            # last block, whose non-worker rows nobody reads.
            x = x.index_copy(1, pos, x_w)
            x_w = block(x, x_w, pos, rope_w, rope_all, mask)
        logits = self.lm_head(self.norm(x_w))  # (B, W, V)
        return logits, next_token_loss(logits, None if targets is None else targets.index_select(1, pos))

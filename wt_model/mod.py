"""Mixture-of-Depths (Raposo et al. 2024, arXiv:2404.02258): a learned router gives each token a weight, and
only a fraction 1/k of the tokens (k = `worker_interval`) goes through a routed block; the others pass by on
the residual stream unchanged.

Per routed block (every `mod_route_every`-th block; 1, the default, routes every block at the worker model's
capacity, 2 is the paper's best setting, the other blocks being standard blocks):
- the router, a linear map C -> 1, gives each token a logit r; its weight is sigmoid(r);
- training: the top `routed_capacity(T, k)` = ceil(T / k) tokens of each sequence by r are gathered (in time
  order), run the block's gated attention among themselves (causal, RoPE at their true positions) and its FFN,
  and their update is added to the stream scaled by the weight, so the router gets a gradient; a fixed capacity,
  so every shape is static (top-k, gather, scatter: no host sync, one graph);
- top-k over a sequence is not causal: whether token t is chosen depends on the router logits of later tokens.
  That is the paper's training, kept as is (its training loss is not a causal LM loss: being chosen says a
  little about the future). So evaluation never uses it: a causal predictor, a small MLP C -> h -> 1
  (h = `predictor_width`), reads a stop-gradient copy of each token's own stream and is trained with a binary
  cross-entropy to predict its top-k membership (the paper's auxiliary predictor). In evaluation mode a token
  is routed when the predictor's logit is > 0, a decision from that token's own past only; the chosen tokens
  attend to the chosen tokens at or before them, as in training. How many are chosen is data-dependent, so
  evaluation computes every row under a mask (fixed shapes; the cost of the standard model plus the routers and
  predictors, wt_model.flops.mod_evaluation_flops_per_sequence), and the update of a token passed by is zero.
- cost of training: the router and the predictor on all T rows (2TC + 2TCh + 2Th FLOPs forward per routed
  block) beside the block on ceil(T / k) rows; the predictor's BCE is added to the returned training loss as
  `aux - aux.detach()`: it adds its gradient but not its value, so the loss the loop records (and its
  train_loss column) stays the language-model CE of every arm, and study/train needs no hook.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wt_model.config import ModelConfig
from wt_model.flops import mod_routed_blocks, predictor_width, routed_capacity
from wt_model.layers import (
    FeedForward,
    GatedAttention,
    PrefixMask,
    RMSNorm,
    Rotary,
    check_length,
    init_weights,
    next_token_loss,
)
from wt_model.standard import StandardBlock


class RoutedBlock(nn.Module):
    """A standard block's layers (gated attention, FFN, two RMSNorms) behind a router, with its causal predictor."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        C, h = cfg.n_embd, predictor_width(cfg.n_embd)
        self.norm1 = RMSNorm(C)
        self.attn = GatedAttention(cfg)
        self.norm2 = RMSNorm(C)
        self.ffn = FeedForward(cfg)
        self.router = nn.Linear(C, 1, bias=False)
        self.predictor = nn.Sequential(nn.Linear(C, h), nn.GELU(), nn.Linear(h, 1))
        self.dropout = cfg.dropout
        self.k = cfg.worker_interval

    def update(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: PrefixMask | None):
        """The block's residual update of rows x (B, L, C), attention then FFN as in StandardBlock: the block's
        output minus its input, which the router weight scales."""
        h = self.norm1(x)
        a = F.dropout(self.attn(h, h, rope, rope, mask), self.dropout, self.training)  # mask None: causal
        f = F.dropout(self.ffn(self.norm2(x + a)), self.dropout, self.training)
        return a + f

    def route_top_k(self, x: torch.Tensor, rotary: Rotary) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: the stream x (B, T, C) with the top-capacity tokens updated, and the predictor's BCE."""
        B, T, C = x.shape
        logits = self.router(x).squeeze(-1)  # (B, T)
        chosen = logits.topk(routed_capacity(T, self.k), dim=1, sorted=False).indices.sort(dim=1).values  # (B, N)
        rows = chosen.unsqueeze(-1).expand(-1, -1, C)  # (B, N, C)
        x_chosen = x.gather(1, rows)  # (B, N, C), in time order, so causal attention among them is causal in time
        rope = rotary.cos[chosen].unsqueeze(1), rotary.sin[chosen].unsqueeze(1)  # (B, 1, N, D): true positions
        weight = torch.sigmoid(logits.gather(1, chosen)).unsqueeze(-1)  # (B, N, 1)
        x_chosen = x_chosen + weight * self.update(x_chosen, rope, mask=None)
        member = torch.zeros_like(logits).scatter(1, chosen, 1.0)  # (B, T): 1 where chosen
        aux = F.binary_cross_entropy_with_logits(self.predictor(x.detach()).squeeze(-1), member)
        return x.scatter(1, rows, x_chosen), aux  # out of place: autograd needs the old stream

    def route_masked(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], chosen: torch.Tensor):
        """The stream x (B, T, C) with the tokens of `chosen` (B, T) bool updated, every row computed: chosen tokens
        attend to the chosen ones at or before them (each row also to itself, so a row nobody chose has a finite
        result, which its zero weight then drops)."""
        B, T, C = x.shape
        logits = self.router(x).squeeze(-1)  # (B, T)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()  # (T, T)
        itself = torch.eye(T, dtype=torch.bool, device=x.device)
        dense = (causal & chosen[:, None, :]) | itself  # (B, T, T): query row i, key j
        # the CPU dropout kernel reads n_keys (the causal bound here) and not `dense`: it runs only in training
        # with dropout, and this path runs in evaluation (or in a test with dropout 0)
        mask = PrefixMask(dense=dense.unsqueeze(1), n_keys=tuple(range(1, T + 1)))  # (B, 1, T, T)
        weight = torch.sigmoid(logits) * chosen  # (B, T): 0 for a token passed by
        return x + weight.unsqueeze(-1) * self.update(x, rope, mask)

    def route_causal(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Evaluation: tokens whose predictor logit is > 0 are updated; each decision reads that token only."""
        return self.route_masked(x, rope, self.predictor(x).squeeze(-1) > 0)


class MixtureOfDepths(nn.Module):
    """Token embedding, RoPE, routed (and, with mod_route_every > 1, standard) blocks, final RMSNorm, LM head."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.rotary = Rotary(cfg.head_dim, cfg.block_size, cfg.rope_base)
        self.blocks = nn.ModuleList(
            RoutedBlock(cfg) if routed else StandardBlock(cfg) for routed in mod_routed_blocks(cfg)
        )
        self.norm = RMSNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        init_weights(self, cfg)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, worker_offset: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """logits (B, T, V) at every position; loss = mean CE over all positions (in training mode with the
        predictors' gradient, not their value, added). Training routes by top-k, evaluation by the predictors.
        `worker_offset` is accepted for a uniform call signature and ignored."""
        B, T = idx.shape
        check_length(self.cfg, T)
        rope = self.rotary.tables(T)
        x = self.tok_emb(idx)  # (B, T, C)
        aux = x.new_zeros(())
        for block in self.blocks:
            if not isinstance(block, RoutedBlock):
                x = block(x, rope)
            elif self.training:
                x, block_aux = block.route_top_k(x, self.rotary)
                aux = aux + block_aux
            else:
                x = block.route_causal(x, rope)
        logits = self.lm_head(self.norm(x))  # (B, T, V)
        loss = next_token_loss(logits, targets)
        if loss is not None and self.training:
            loss = loss + (aux - aux.detach())  # the predictors learn; the value stays the CE
        return logits, loss

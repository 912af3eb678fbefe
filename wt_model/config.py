"""Model configuration: one frozen dataclass for every architecture (the registry, wt_model.archs, says which
fields each one reads)."""

from __future__ import annotations

from dataclasses import dataclass

from wt_model import archs

ATTENTIONS = ("sdpa", "naive", "flex")
INITS = ("torch", "nanogpt")
# field -> its allowed values: __post_init__ checks them, and `wt-study train` offers them as flag choices
CHOICES = {"arch": tuple(archs.ARCHS), "attention": ATTENTIONS, "init": INITS}


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of a StandardTransformer or a WorkerTransformer.

    The defaults are the seed's long-sequence experiment (T=1024, dim 256, 4 layers, 4 heads, interval 4).
    """

    arch: str = "worker"  # a name in wt_model.archs: "standard" (every token updated), "worker" (every k-th, in place)
    vocab_size: int = 65  # number of distinct tokens (65 characters for TinyShakespeare)
    block_size: int = 1024  # longest sequence the model accepts (sizes the RoPE tables)
    n_embd: int = 256  # residual stream width
    n_head: int = 4  # attention heads; n_embd / n_head must be an even head dimension (RoPE rotates pairs)
    n_layer: int = 4  # transformer blocks
    ffn_hidden: int = 0  # FFN hidden width; 0 (the default) means 4 * n_embd, the seed's choice (see ffn_width)
    dropout: float = 0.1  # dropout on attention weights and residual branches (the seed trains with 0.1)
    worker_interval: int = 4  # k: positions k-1, 2k-1, ... (and always the last) are workers; worker only
    random_worker_phase: bool = False  # worker only: draw the worker phase at random per training batch
    # "sdpa" (fused scaled_dot_product_attention), "naive" (materialised scores) or "flex": the worker's masked
    # attention through FlexAttention's block-sparse kernel on CUDA (SDPA elsewhere), and NO dropout on attention
    # weights in either model (FlexAttention has none; residual dropout stays): a different regulariser than
    # the seed's, hence a named choice
    attention: str = "sdpa"
    init: str = "torch"  # "torch" (PyTorch's module defaults, as the seed) or "nanogpt" (N(0, 0.02), scaled residuals)
    conv_kernel: int = 3  # worker only: width of the causal depthwise token mixer (the seed uses 3)
    rope_base: float = 10000.0  # RoPE frequency base
    # hourglass only: full-resolution layers before the shortening and again after the upsampling; the other
    # n_layer - 2 * hourglass_outer_layers layers run on the sequence shortened by worker_interval (the paper's
    # (1@1, 2@k, 1@1) at the default n_layer=4)
    hourglass_outer_layers: int = 1
    # mod only: every mod_route_every-th block is routed (1: every block, the worker's capacity 1/k in each;
    # 2: every other block, the rest standard, the paper's best setting)
    mod_route_every: int = 1

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            _check(getattr(self, name) in allowed, name, getattr(self, name), f"one of {', '.join(allowed)}")
        for name in ("vocab_size", "block_size", "n_embd", "n_head", "n_layer", "conv_kernel"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 1, name, value, "an integer >= 1")
        _check(
            _is_int(self.ffn_hidden) and self.ffn_hidden >= 0,
            "ffn_hidden",
            self.ffn_hidden,
            "an integer >= 1, or 0 for 4 * n_embd",
        )
        _check(
            _is_int(self.worker_interval) and self.worker_interval >= 1,
            "worker_interval",
            self.worker_interval,
            "an integer >= 1",
        )
        if archs.applies("worker_interval", self.arch):  # a stride past the sequence: one worker, the last token
            _check(
                self.worker_interval <= self.block_size,
                "worker_interval",
                self.worker_interval,
                f"at most block_size={self.block_size} (the sequence length: a larger interval leaves one worker)",
            )
        _check(
            self.n_embd % self.n_head == 0,
            "n_head",
            self.n_head,
            f"a divisor of n_embd={self.n_embd}",
        )
        _check(
            (self.n_embd // self.n_head) % 2 == 0,
            "n_head",
            self.n_head,
            f"a value giving an even head dimension (n_embd={self.n_embd} / n_head is odd; RoPE rotates pairs)",
        )
        _check(
            isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0,
            "dropout",
            self.dropout,
            "a number in [0, 1)",
        )
        _check(
            isinstance(self.random_worker_phase, bool),
            "random_worker_phase",
            self.random_worker_phase,
            "true or false",
        )
        _check(
            isinstance(self.rope_base, (int, float)) and self.rope_base > 1.0,
            "rope_base",
            self.rope_base,
            "a number > 1",
        )
        self._check_peers()

    def _check_peers(self) -> None:
        """The fields of the peer architectures (wt_model.hourglass, wt_model.mod), checked where they apply."""
        for name in ("hourglass_outer_layers", "mod_route_every"):
            value, least = getattr(self, name), 0 if name == "hourglass_outer_layers" else 1
            _check(_is_int(value) and value >= least, name, value, f"an integer >= {least}")
        if self.arch == "hourglass":
            _check(
                2 * self.hourglass_outer_layers < self.n_layer,
                "hourglass_outer_layers",
                self.hourglass_outer_layers,
                f"at most {(self.n_layer - 1) // 2} with n_layer={self.n_layer} (at least one shortened layer between "
                "the full-resolution layers on either side; raise n_layer or lower hourglass_outer_layers)",
            )
        if self.arch == "mod":
            _check(
                self.mod_route_every <= self.n_layer,
                "mod_route_every",
                self.mod_route_every,
                f"at most n_layer={self.n_layer} (a larger value routes no block: the standard model)",
            )

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def ffn_width(self) -> int:
        """The FFN hidden width the layers, FLOPs and trial rows use: ffn_hidden, or 4 * n_embd when it is 0."""
        return self.ffn_hidden or default_ffn_width(self.n_embd)


def default_ffn_width(n_embd: int) -> int:
    """The FFN hidden width when ffn_hidden is 0: 4 * n_embd, the seed's choice."""
    return 4 * n_embd


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(ok: bool, field: str, value: object, allowed: str) -> None:
    if not ok:
        raise ValueError(f"ModelConfig.{field}={value!r} is invalid: expected {allowed}.")


def label_settings(label: str) -> dict:
    """The ModelConfig fields a spec label (wt_model.archs.LABELS) sets: its architecture, the settings its
    registry entry fixes and its variant's settings. A plain name sets the fields its variants change back to
    their defaults, so "worker" never means a random phase."""
    arch, variant = archs.of_label(label), archs.LABELS[label][1]
    defaults = ModelConfig()
    settings = {"arch": arch.name, **dict(arch.settings)}
    settings.update({name: getattr(defaults, name) for v in arch.variants for name, _ in v.overrides})
    settings.update(variant.overrides)
    return settings

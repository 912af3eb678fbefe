"""The architecture registry: every architecture the study can build, and what the rest of the code needs to know
about it, in one table.

Torch-free (a model class is named, and imported only when `build_model` builds it), so configs, FLOP counts,
the study spec, trial rows, the scheduler's arms and the analysis all read it without loading torch. A new
architecture is one entry here and its model class: its spec label, its `wt-study train --arch` choice, its
parameter and FLOP counts (from the entry's traits, see wt_model.flops), its evaluation passes, its trial rows
and its rows in every report follow from the entry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

REFERENCE = "standard"  # the architecture every other one is compared against


@dataclass(frozen=True)
class Variant:
    """A spec label for a setting of an architecture (the `arch` axis value and trials column)."""

    label: str  # e.g. "worker-random-phase"
    title: str  # how report tables name it
    overrides: tuple = ()  # (ModelConfig field, value) pairs the label sets


@dataclass(frozen=True)
class Arch:
    """One architecture: its model class, the fields only it reads and the traits its FLOPs follow from."""

    name: str  # ModelConfig.arch
    title: str  # how report tables name it
    model: str  # "module:Class" of its nn.Module, imported by build_model
    own_fields: tuple = ()  # ModelConfig fields only this architecture reads (null in its rows elsewhere)
    # only the worker rows are updated: queries, gate, output projection, FFN and LM head run on the W worker
    # rows, and evaluation takes one pass per worker phase so that every position is predicted once
    sparse: bool = False
    mixer: bool = False  # a causal depthwise conv token mixer (conv_kernel wide) feeds each block's attention
    marker: bool = False  # a learned worker-type embedding is added at the worker rows
    variants: tuple = ()  # Variant labels beyond the plain name
    # the arm its verdicts compare it with (None: the reference itself); it must be a registry name
    reference: str | None = REFERENCE
    # (ModelConfig field, value) pairs this architecture always sets (e.g. (("rope_base", 500.0),)): it differs from
    # its reference in them, and a comparison matches its trials with the reference's whatever those fields hold
    settings: tuple = ()
    # further ModelConfig fields in which its trials may differ from the reference's in one comparison
    differs: tuple = ()

    @property
    def differing(self) -> tuple[str, ...]:
        """The ModelConfig fields, beyond its own, in which this arm may differ from its reference."""
        return tuple(dict.fromkeys((*(name for name, _ in self.settings), *self.differs)))

    def labels(self) -> tuple[Variant, ...]:
        """The spec labels of this architecture: its own name first, then its variants."""
        return (Variant(self.name, self.title), *self.variants)


ARCHS = {
    arch.name: arch
    for arch in (
        Arch("standard", "Standard Transformer", "wt_model.standard:StandardTransformer", reference=None),
        # the ablation: what the worker's token mixer alone buys (every token still runs attention and the FFN)
        Arch(
            "standard-mixer",
            "Standard Transformer + token mixer",
            "wt_model.standard:StandardTransformer",
            own_fields=("conv_kernel",),
            mixer=True,
        ),
        Arch(
            "worker",
            "WorkerTransformer",
            "wt_model.worker:WorkerTransformer",
            own_fields=("worker_interval", "conv_kernel", "random_worker_phase"),
            sparse=True,
            mixer=True,
            marker=True,
            variants=(
                Variant("worker-random-phase", "WorkerTransformer (random phase)", (("random_worker_phase", True),)),
            ),
        ),
        # the published peers (docs/peers.md): shortening by k = worker_interval, and a learned router at capacity 1/k
        Arch(
            "hourglass",
            "Hourglass Transformer",
            "wt_model.hourglass:HourglassTransformer",
            own_fields=("worker_interval", "hourglass_outer_layers"),
        ),
        Arch(
            "mod",
            "Mixture-of-Depths",
            "wt_model.mod:MixtureOfDepths",
            own_fields=("worker_interval", "mod_route_every"),
            variants=(Variant("mod-interleaved", "Mixture-of-Depths (every other block)", (("mod_route_every", 2),)),),
        ),
    )
}
# spec label -> (architecture, its variant): the values of the `arch` axis and of the trials column `arch`
LABELS = {variant.label: (arch, variant) for arch in ARCHS.values() for variant in arch.labels()}
# fields that belong to some architectures only: what tells arms apart besides the label
ARM_FIELDS = tuple(sorted({name for arch in ARCHS.values() for name in arch.own_fields}))


def get(name: str) -> Arch:
    """The architecture `name` (ModelConfig.arch); an unknown name is a ValueError naming the known ones."""
    if name not in ARCHS:
        raise ValueError(f"arch={name!r} is not a known architecture: expected one of {', '.join(ARCHS)}.")
    return ARCHS[name]


def of_label(label: str) -> Arch:
    """The architecture a spec label (an `arch` axis value, a trials `arch` value) names."""
    if label not in LABELS:
        raise ValueError(f"arch={label!r} is not a known architecture: expected one of {', '.join(LABELS)}.")
    return LABELS[label][0]


def applies(field: str, arch: str) -> bool:
    """Whether ModelConfig field `field` means something for architecture `arch` (a name, not a label)."""
    return field not in ARM_FIELDS or field in get(arch).own_fields


def model_class(arch: str) -> type:
    """The nn.Module class of architecture `arch` (imports torch)."""
    module, name = get(arch).model.split(":")
    return getattr(importlib.import_module(module), name)

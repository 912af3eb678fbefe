"""The one device resolver (a device name from a config or a flag -> torch.device, or one clear sentence) and the
execution settings a run resolves from its config on its device: what bought its steps, recorded per trial."""

from __future__ import annotations

import os

import torch

from wt_base.errors import StudyError


def resolve_device(name: str, what: str = "train.device") -> torch.device:
    """`auto` is CUDA when a CUDA device is visible, else the CPU; `cpu`, `cuda` and `cuda:N` are taken as
    given once they exist here. `what` names the setting in the message (e.g. "--device")."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise StudyError(f"{what}={name!r} is invalid: expected auto, cpu, cuda or cuda:N.") from None
    if device.type not in ("cpu", "cuda"):
        raise StudyError(f"{what}={name!r} is invalid: expected auto, cpu, cuda or cuda:N.")
    if device.type == "cuda":
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if visible == 0:
            raise StudyError(f"{what}={name!r} is invalid here: no CUDA device is visible; use 'auto' or 'cpu'.")
        if device.index is not None and device.index >= visible:
            raise StudyError(
                f"{what}={name!r} is invalid here: {visible} CUDA device(s) are visible, cuda:0 to cuda:{visible - 1}."
            )
    return device


def device_name(device: torch.device) -> str:
    """The name trial rows and machine profiles record for `device`: the GPU's name, or "cpu (N cores)"."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} cores)"


def execution_settings(cfg, device: torch.device, compile_mode: str) -> dict:
    """What a run computes with, beyond its config: dtype, the resolved compile mode, the attention kernels that
    run and the CPU threads. A seconds budget buys different numbers of steps under each, so the analysis keys
    cells by them (trials columns dtype, compile_mode, attention_backend, threads)."""
    from wt_model.layers import attention_backend

    return {
        "dtype": "bfloat16" if device.type == "cuda" else "float32",  # bf16 autocast on CUDA, fp32 on a CPU
        "compile_mode": compile_mode,
        "attention_backend": attention_backend(cfg.model, device.type, compiled=compile_mode != "off"),
        "threads": cfg.train.threads or torch.get_num_threads(),  # the loop sets train.threads when given
    }

"""Where a run computes: the host CPU or an accelerator, named as torch names devices.

The network is always initialised on the host from the seed and then moved, so the starting
point is the same everywhere; results on a GPU differ from the CPU's in the last bits of
floating point, but a given device and seed still give the same numbers run after run.
"""

from __future__ import annotations

import torch

from tinysubnets.errors import ConfigError


def check_device_name(name: str) -> None:
    """Raise ConfigError unless ``name`` is "cpu", "auto", "cuda" or "cuda:N"."""
    ok = name in ("cpu", "auto", "cuda") or (
        name.startswith("cuda:") and name[5:].isdigit()
    )
    if not ok:
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto")


def resolve_device(name: str) -> torch.device:
    """The device ``name`` asks for; "auto" is the first GPU when there is one, else the CPU.

    Asking for a GPU that is not there is an error, not a silent fall-back to the CPU.
    """
    check_device_name(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but torch sees no CUDA GPU here")
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} asked for, but torch sees {torch.cuda.device_count()} GPU(s)"
            )
        # Same seed, same numbers on a GPU too: deterministic cuDNN kernels, no autotuning.
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        return torch.device("cuda", index)
    return torch.device(name)

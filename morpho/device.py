"""The one device check: a torch device name, and whether this machine has it.

is_device_name("cuda:1")   # True: the syntax a config accepts
resolve_device("cuda")     # torch.device, or ValueError when CUDA is not available
"""

from __future__ import annotations

import re

import torch

DEVICE_NAMES = "cpu, cuda, cuda:N or mps"  # what a config may name, for error messages


def is_device_name(name: str) -> bool:
    """Whether ``name`` is a device a config may name (:data:`DEVICE_NAMES`)."""
    return re.fullmatch(r"cpu|mps|cuda(:\d+)?", name) is not None


def resolve_device(name: str) -> torch.device:
    """The torch device ``name`` names; ``ValueError`` listing the choices otherwise, or
    saying that CUDA is not available on this machine."""
    if not is_device_name(name):
        raise ValueError(f"unknown device {name!r}; expected {DEVICE_NAMES}")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; expected cpu")
    return device

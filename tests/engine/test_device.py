"""The one device check (morpho/device.py), used by configs, the trainer and the commands."""

from __future__ import annotations

import pytest
import torch

from morpho.device import is_device_name, resolve_device
from morpho.trainer import TrainConfig


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:1", "mps"])
def test_device_names_a_config_accepts(name: str) -> None:
    assert is_device_name(name)


@pytest.mark.parametrize("name", ["tpu", "cuda:", "CPU", "cuda:x", ""])
def test_other_names_are_refused_listing_the_choices(name: str) -> None:
    assert not is_device_name(name)
    with pytest.raises(ValueError, match="expected cpu, cuda, cuda:N or mps"):
        resolve_device(name)
    with pytest.raises(ValueError, match="train.device must be cpu, cuda, cuda:N or mps"):
        TrainConfig(device=name)


def test_cpu_resolves_and_a_missing_cuda_is_named() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")

"""A lower bound on the memory a run needs, checked before anything is allocated or written.

    check_fits(cfg.network, cfg.train)   # ValueError naming the need and the device's memory

The bound counts only tensors a training step surely holds: the seed tissue's cell banks
(their shapes come from the cell type) with their gradients and AdamW's two moments
(4 floats per parameter), the embedding and read-out, the (B, T, d) output of every
seed cell kept for the backward pass and, on the CPU (where attention materialises its
scores), one cell's (B, heads, T, T) attention scores. Real runs need more (growth,
workspace), so a config refused here could never run; one accepted may still run out.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from morpho.cells import CELL_TYPES
from morpho.network import NetworkConfig

if TYPE_CHECKING:  # annotations only: the trainer is heavy
    from morpho.trainer import TrainConfig

FLOAT = 4  # bytes of a float32
SLOTS = 4  # weight, gradient and AdamW's two moments


def required_bytes(net: NetworkConfig, train: TrainConfig) -> int:
    """The lower bound in bytes (see the module docstring)."""
    cell = CELL_TYPES.get(net.cell_type).from_network(net)
    cells = sum(net.level_sizes)
    per_cell = sum(math.prod(bank.shape) for bank in cell.banks(net.d_cell).values())
    params = cells * per_cell + 2 * net.vocab_size * net.d_cell
    activations = train.batch_size * train.seq_len * net.d_cell * (cells + 1)
    if train.device == "cpu":
        activations += train.batch_size * net.n_heads * train.seq_len**2
    return FLOAT * (SLOTS * params + activations)


def device_bytes(device: str) -> int | None:
    """Memory of ``device`` in bytes (RAM, within a cgroup limit, for the CPU); None if
    unknown."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return None
        index = int(device.split(":")[1]) if ":" in device else 0
        return int(torch.cuda.get_device_properties(index).total_memory)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return min(ram, _cgroup_limit() or ram)


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


def check_fits(net: NetworkConfig, train: TrainConfig) -> None:
    """``ValueError`` if the run needs more memory than ``train.device`` has."""
    need, have = required_bytes(net, train), device_bytes(train.device)
    if have is not None and need > have:
        raise ValueError(
            f"the config needs at least {_gib(need)} of memory (network.d_cell={net.d_cell}, "
            f"{sum(net.level_sizes)} cells, train.batch_size={train.batch_size}, "
            f"train.seq_len={train.seq_len}); expected at most the {_gib(have)} of "
            f"{train.device}"
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"

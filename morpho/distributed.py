"""Data-parallel training on ``torch.distributed``: one tissue, N processes, same growth.

    torchrun --nproc_per_node 2 -m morpho grow --task lang        # gloo on CPU, NCCL on GPU

Every rank draws the same global batch (same data generator) and trains on its own slice
of rows. After the backward pass the gradients are averaged over ranks in one flat
all-reduce, so the update equals the update of the global batch; the per-cell statistics
(and the loss that is logged) are averaged the same way *before* the scheduler reads them,
and the dendrite rule's edge gradients before it ranks candidates. Every rank then runs the
same rules on the same numbers with the same seeded generators, so the decided events,
the tissue and the optimizer state stay identical on every rank through every edit —
without a broadcast. Only rank 0 writes the run directory.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor


def init_from_env(device: torch.device) -> bool:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); False if single."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return True


def env_rank() -> int:
    """This process's rank as torchrun sets it (``RANK``; 0 when absent or unreadable),
    readable before the process group exists: refusals print on rank 0 only."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def shard(batch: Tensor) -> Tensor:
    """This rank's rows of a global batch (the batch size must divide by the world size)."""
    n = world_size()
    if n == 1:
        return batch
    if batch.shape[0] % n:
        raise ValueError(
            f"batch_size {batch.shape[0]} must be a multiple of the {n} data-parallel processes"
        )
    size = batch.shape[0] // n
    return batch[rank() * size : (rank() + 1) * size]


def all_reduce_mean_(tensors: list[Tensor]) -> None:
    """Average ``tensors`` over ranks in place, with one flat all-reduce."""
    if world_size() == 1 or not tensors:
        return
    flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for t in tensors:
        n = t.numel()
        t.detach().copy_(flat[offset : offset + n].view_as(t))
        offset += n

"""Checkpoints: the network (tissue + banks), optimizer state and step, loadable without pickle.

Files hold only tensors, numbers, strings, lists and dicts, and are read with
``torch.load(weights_only=True)``, so a crafted file cannot run code. Writes are atomic
(temp file, fsync, rename).

    save_checkpoint(path, net, optimizer, step=step, extra={"vocab": [...]})
    net, state = load_network(path)                 # rebuilds the grown topology
    optimizer.load_state_dict(state["optimizer"])
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch_geometric.data import Data

from morpho.network import Network, NetworkConfig
from morpho.tissue import _atomic_write

FORMAT = 1


def save_checkpoint(path: str | os.PathLike[str], net: Network,
                    optimizer: torch.optim.Optimizer | None = None, step: int = 0,
                    extra: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Write network, optimizer and ``extra`` (JSON-like values and tensors) atomically."""
    t = net.tissue
    payload = {
        "format": FORMAT,
        "step": step,
        "network_config": {k: list(v) if isinstance(v, tuple) else v
                           for k, v in asdict(net.cfg).items()},  # fmt: skip
        "tissue": {k: v for k, v in t.items() if torch.is_tensor(v)},
        "tissue_counters": [int(t.next_cell_id), int(t.next_edge_id)],
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "extra": extra or {},
    }
    _atomic_write(Path(path), lambda f: torch.save(payload, f))


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint without unpickling arbitrary objects.

    Raises:
        ValueError: the file is missing, not a morpho checkpoint, or holds non-tensor objects.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"checkpoint {str(p)!r} does not exist")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report any unreadable file in one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"checkpoint {str(p)!r} cannot be read safely: {first}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"checkpoint {str(p)!r} is not a morpho checkpoint (format {FORMAT})")
    return payload


def network_from_payload(payload: dict[str, Any]) -> Network:
    """Rebuild the grown network stored in a checkpoint payload."""
    cfg_dict = dict(payload["network_config"])
    cfg_dict["level_sizes"] = tuple(cfg_dict["level_sizes"])
    net = Network(NetworkConfig(**cfg_dict))
    tissue = Data(**payload["tissue"])
    tissue.num_nodes = int(payload["tissue"]["cell_id"].shape[0])
    tissue.next_cell_id, tissue.next_edge_id = payload["tissue_counters"]
    state = payload["model"]
    for name in list(net.banks):
        net.banks[name] = nn.Parameter(state[f"banks.{name}"].clone())
    net.load_state_dict(state)
    net.tissue = tissue
    net.step = int(payload["step"])
    net.rebuild()
    return net


def load_network(path: str | os.PathLike[str]) -> tuple[Network, dict[str, Any]]:
    """``(network, payload)`` from a checkpoint file."""
    payload = load_checkpoint(path)
    return network_from_payload(payload), payload

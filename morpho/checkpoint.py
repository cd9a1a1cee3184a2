"""Checkpoints: network (tissue + banks), optimizer state and run state, safe to load.

File format: ``MORPHOCK`` magic, then the ``torch.save`` payload, then its SHA-256 digest.
A truncated or bit-flipped file fails the digest and is reported in one line; the payload
holds only tensors, numbers, strings, lists and dicts and is read with
``torch.load(weights_only=True)``, so a crafted file cannot run code when loaded. Writes
are atomic (temp file, fsync, rename): the previous checkpoint stays until the new one is
complete.

    save_checkpoint(path, net, optimizer, step=step, extra={"task": {...}})
    net, payload = load_network(path)               # rebuilds the grown topology
    optimizer.load_state_dict(payload["optimizer"])
    path, payload = latest_checkpoint(run / "checkpoints")   # newest file that verifies

A trainer's part of the payload (:func:`trainer_payload`, :func:`restore_trainer`): its
:class:`~morpho.callbacks.TrainerState`, the terms' and callbacks' ``state_dict()``, the
RNG states, and the byte lengths of the run's logs at the checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch_geometric.data import Data

from morpho.callbacks import TrainerState
from morpho.network import Network, NetworkConfig
from morpho.tissue import _atomic_write

if TYPE_CHECKING:
    from morpho.trainer import Trainer

FORMAT = 1
LOG_FILES = ("metrics.jsonl", "events.jsonl")
MAGIC = b"MORPHOCK"
DIGEST = 32  # bytes of SHA-256


def save_checkpoint(
    path: str | os.PathLike[str],
    net: Network,
    optimizer: torch.optim.Optimizer | None = None,
    step: int = 0,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write network, optimizer and ``extra`` (JSON-like values and tensors) atomically."""
    t = net.tissue
    payload = {
        "format": FORMAT,
        "step": step,
        "network_config": {
            k: list(v) if isinstance(v, tuple) else v for k, v in asdict(net.cfg).items()
        },
        "tissue": {k: v for k, v in t.items() if torch.is_tensor(v)},
        "tissue_counters": [int(t.next_cell_id), int(t.next_edge_id)],
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "extra": extra or {},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    digest = hashlib.sha256(body).digest()
    _atomic_write(Path(path), lambda f: f.write(MAGIC + body + digest))


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and verify a checkpoint without unpickling arbitrary objects.

    Raises:
        ValueError: the file is missing, truncated or corrupted (digest mismatch), not a
            morpho checkpoint, or holds objects other than tensors and plain containers.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"checkpoint {str(p)!r} does not exist")
    raw = p.read_bytes()
    if not raw.startswith(MAGIC) or len(raw) < len(MAGIC) + DIGEST:
        raise ValueError(f"checkpoint {str(p)!r} is not a morpho checkpoint (bad header)")
    body, digest = raw[len(MAGIC) : -DIGEST], raw[-DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise ValueError(f"checkpoint {str(p)!r} is truncated or corrupted (checksum mismatch)")
    try:
        payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report any unreadable payload in one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"checkpoint {str(p)!r} cannot be read safely: {first}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"checkpoint {str(p)!r} is not a morpho checkpoint (format {FORMAT})")
    return payload


def latest_checkpoint(folder: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """The newest ``step_*.pt`` (then ``final.pt``) in ``folder`` that verifies.

    Files that fail verification are reported on stderr, one line each, and skipped.

    Raises:
        ValueError: no checkpoint in ``folder`` verifies.
    """
    folder = Path(folder)
    candidates = sorted(folder.glob("step_*.pt"), key=_step_of, reverse=True)
    if (folder / "final.pt").exists():
        candidates.insert(0, folder / "final.pt")
    for path in candidates:
        try:
            return path, load_checkpoint(path)
        except ValueError as e:
            print(f"morpho: skipping {e}", file=sys.stderr)
    raise ValueError(f"no valid checkpoint in {str(folder)!r}; expected step_*.pt files")


def _step_of(path: Path) -> int:
    m = re.search(r"step_(\d+)\.pt$", path.name)
    return int(m.group(1)) if m else -1


def network_from_payload(payload: dict[str, Any]) -> Network:
    """Rebuild the grown network stored in a checkpoint payload."""
    cfg_dict = dict(payload["network_config"])
    cfg_dict["level_sizes"] = tuple(cfg_dict["level_sizes"])
    tissue = Data(**payload["tissue"])
    tissue.num_nodes = int(payload["tissue"]["cell_id"].shape[0])
    tissue.next_cell_id, tissue.next_edge_id = payload["tissue_counters"]
    net = Network(NetworkConfig(**cfg_dict), tissue=tissue)
    state = payload["model"]
    for name in list(net.banks):
        net.banks[name] = nn.Parameter(state[f"banks.{name}"].clone())
    net.load_state_dict(state)
    net.step = int(payload["step"])
    net.rebuild()
    return net


def load_network(path: str | os.PathLike[str]) -> tuple[Network, dict[str, Any]]:
    """``(network, payload)`` from a checkpoint file."""
    payload = load_checkpoint(path)
    return network_from_payload(payload), payload


def trainer_payload(trainer: Trainer, run_path: Path) -> dict[str, Any]:
    """Everything besides network and optimizer that a resumed run needs (``extra``)."""
    return {
        "task": trainer.task.describe(),
        "trainer": dataclasses.asdict(trainer.state),
        "terms": {type(t).__name__: t.state_dict() for t in trainer.terms},
        "rng": {
            "torch": torch.get_rng_state(),
            "data": trainer.generator.get_state(),
            "monitor": trainer.monitor_generator.get_state(),
        },
        "callbacks": {
            type(cb).__name__: cb.state_dict()
            for cb in trainer.callbacks
            if hasattr(cb, "state_dict")
        },
        "log_bytes": {
            name: (run_path / name).stat().st_size
            for name in LOG_FILES
            if (run_path / name).exists()
        },
    }


def restore_trainer(trainer: Trainer, payload: dict[str, Any]) -> None:
    """Put a :func:`trainer_payload` (and the optimizer) back into ``trainer``."""
    extra = payload["extra"]
    trainer.optimizer.load_state_dict(payload["optimizer"])
    names = {f.name for f in dataclasses.fields(TrainerState)}
    trainer.state = TrainerState(**{k: v for k, v in extra["trainer"].items() if k in names})
    torch.set_rng_state(extra["rng"]["torch"])
    trainer.generator.set_state(extra["rng"]["data"])
    trainer.monitor_generator.set_state(extra["rng"]["monitor"])
    for term in trainer.terms:
        term.load_state_dict(extra.get("terms", {}).get(type(term).__name__, {}))
    for cb in trainer.callbacks:
        if hasattr(cb, "load_state_dict") and type(cb).__name__ in extra["callbacks"]:
            cb.load_state_dict(extra["callbacks"][type(cb).__name__])


def save_trainer_checkpoint(trainer: Trainer, name: str | None = None) -> str:
    """Write ``checkpoints/step_<step>.pt`` of the trainer's run (or ``name``; atomic,
    checksummed) with its :func:`trainer_payload`; keep the newest few step checkpoints."""
    assert trainer.run is not None
    folder = trainer.run.path / "checkpoints"
    path = folder / (name or f"step_{trainer.step:08d}.pt")
    extra = trainer_payload(trainer, trainer.run.path)
    save_checkpoint(path, trainer.net, trainer.optimizer, step=trainer.step, extra=extra)
    if name is None:
        for old in sorted(folder.glob("step_*.pt"))[: -trainer.cfg.keep_checkpoints]:
            old.unlink()
    return str(path)

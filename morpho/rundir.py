"""The run directory (DESIGN §5): everything a movie, a plot or a resume needs.

    run/
      config.toml       the resolved config
      metrics.jsonl     one JSON object per logged step ("kind": "train") or eval ("kind": "eval")
      events.jsonl      one per topology event: step, kind, cells, reason, statistics
      snapshots/        step_00000000.npz … tissue at the start, at each event, at the end
      checkpoints/      resumable state
      summary.json      final figures (val_bpc, params, cells, …)

Readers (``morpho.viz``) use :func:`read_jsonl` and :func:`snapshot_paths`; nothing here
needs a live process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from morpho.tissue import _atomic_write, save_snapshot


class RunDir:
    """Writer for one run directory."""

    def __init__(self, path: str | os.PathLike[str], overwrite: bool = False) -> None:
        self.path = Path(path)
        if self.path.exists() and any(self.path.iterdir()) and not overwrite:
            raise ValueError(
                f"run directory {str(self.path)!r} exists and is not empty; "
                "expected a new path (or pass --overwrite)"
            )

    @classmethod
    def existing(cls, path: str | os.PathLike[str]) -> RunDir:
        """An existing run directory (to resume); ``ValueError`` if it is not one."""
        p = Path(path)
        if not (p / "config.toml").is_file() or not (p / "checkpoints").is_dir():
            raise ValueError(
                f"{str(p)!r} is not a morpho run directory; expected config.toml "
                "and checkpoints/ inside"
            )
        return cls(p, overwrite=True)

    def rewind(self, log_bytes: dict[str, int], step: int) -> None:
        """Cut the logs back to the given lengths and drop snapshots after ``step``.

        A run killed after its last checkpoint may have logged further lines; a resumed
        run writes them again, so they go first.
        """
        for name, size in log_bytes.items():
            with open(self.path / name, "r+b") as f:
                f.truncate(size)
        for snap in snapshot_paths(self.path):
            if int(snap.stem.split("_")[1]) > step:
                snap.unlink()
        (self.path / "summary.json").unlink(missing_ok=True)

    def create(self, config_toml: str) -> None:
        (self.path / "snapshots").mkdir(parents=True, exist_ok=True)
        (self.path / "checkpoints").mkdir(exist_ok=True)
        for name in ("metrics.jsonl", "events.jsonl"):
            (self.path / name).write_text("")
        self.write_text("config.toml", config_toml)

    def write_text(self, name: str, text: str) -> None:
        _atomic_write(self.path / name, lambda f: f.write(text.encode()))

    def log_metrics(self, record: dict[str, Any]) -> None:
        self._append("metrics.jsonl", record)

    def log_event(self, record: dict[str, Any]) -> None:
        self._append("events.jsonl", record)

    def save_snapshot(self, tissue: Any, step: int, meta: dict[str, Any]) -> Path:
        path = self.path / "snapshots" / f"step_{step:08d}.npz"
        save_snapshot(tissue, path, {"step": step, **meta})
        return path

    def write_summary(self, summary: dict[str, Any]) -> None:
        self.write_text("summary.json", json.dumps(summary, indent=2) + "\n")

    def _append(self, name: str, record: dict[str, Any]) -> None:
        with open(self.path / name, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records of a ``.jsonl`` file (an absent file reads as empty)."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line]


def snapshot_paths(run: str | os.PathLike[str]) -> list[Path]:
    """The run's snapshots in step order."""
    return sorted((Path(run) / "snapshots").glob("step_*.npz"))

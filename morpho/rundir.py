"""The run directory (DESIGN §5): everything a movie, a plot or a resume needs.

    run/
      config.toml       the resolved config
      metrics.jsonl     one JSON object per logged step ("kind": "train") or eval ("kind": "eval")
      events.jsonl      one per topology event: step, kind, cells, reason, statistics
      snapshots/        step_00000000.npz … tissue at the start, at each event, at the end
      checkpoints/      resumable state
      summary.json      final figures (val_bpc, params, cells, …)
      .lock             held (``flock``) by the one process writing the run; holds its pid

A run directory has one writer. :class:`RunDir` refuses a directory another process holds
(naming its pid) or one that is not empty; ``overwrite`` replaces the whole directory: the
new run is laid out beside it and swapped in with one rename (``RENAME_EXCHANGE``), so a
crash leaves the old run or the new one, never a mix. The lock is an ``flock``, released by
the kernel on any exit, so a lock left by a dead process is simply free again.

Readers (``morpho.runs``, ``morpho.viz``) use :func:`read_jsonl` and :func:`snapshot_paths`;
nothing here needs a live process.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import uuid
import weakref
from pathlib import Path
from typing import Any

from morpho.tissue import _atomic_write, save_snapshot

LOCK = ".lock"
STAGING = ".morpho-"  # infix of the hidden folders a replacement is built in
_LOCKS: dict[str, list[int]] = {}  # real path of a directory -> [lock fd, users] (this process)


class RunDir:
    """Writer for one run directory; see the module docstring for ownership and overwrite.

    Construction only checks (and, to overwrite, takes the old run's lock): nothing is
    written until :meth:`create`.
    """

    def __init__(self, path: str | os.PathLike[str], overwrite: bool = False) -> None:
        self.path = Path(path)
        self._held: list[str] = []  # lock keys this writer holds (released when it goes)
        weakref.finalize(self, _release_all, self._held)
        check_out_dir(self.path)
        if has_content(self.path):
            if not overwrite:
                _refuse_if_busy(self.path)
                raise ValueError(
                    f"run directory {str(self.path)!r} exists and is not empty; "
                    "expected a new path (or pass --overwrite)"
                )
            self._held.append(_acquire(self.path))

    def release(self) -> None:
        """Give up ownership now (it also ends when this writer is collected or the
        process exits)."""
        _release_all(self._held)

    def claim(self) -> None:
        """Own ``path`` as an empty directory (replacing an old one whole), for writers
        that fill it themselves."""
        install_dir(self.path, lambda staging: None, self._held)

    @classmethod
    def existing(cls, path: str | os.PathLike[str]) -> RunDir:
        """An existing run directory, owned (to resume); ``ValueError`` if it is not one."""
        p = Path(path)
        if not (p / "config.toml").is_file() or not (p / "checkpoints").is_dir():
            raise ValueError(
                f"{str(p)!r} is not a morpho run directory; expected config.toml "
                "and checkpoints/ inside"
            )
        run = cls.__new__(cls)
        run.path = p
        run._held = [_acquire(p)]
        weakref.finalize(run, _release_all, run._held)
        return run

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
        """Lay the run out beside ``path`` and move it in (replacing an old run whole)."""

        def layout(staging: Path) -> None:
            (staging / "snapshots").mkdir()
            (staging / "checkpoints").mkdir()
            for name in ("metrics.jsonl", "events.jsonl"):
                _atomic_write(staging / name, lambda f: None)
            _atomic_write(staging / "config.toml", lambda f: f.write(config_toml.encode()))

        install_dir(self.path, layout, self._held)

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


# ------------------------------------------------------------------ output paths
def check_out_dir(path: Path, what: str = "run directory") -> None:
    """``ValueError`` unless ``path`` is, or can become, a directory this process may write."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a file; expected a directory")
    _check_parent(path, what, "a directory")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {str(path)!r} is not writable; expected a writable directory")


def check_out_file(path: Path, what: str = "--out", overwrite: bool = False) -> None:
    """``ValueError`` unless ``path`` names a new file (an existing one only with
    ``overwrite``) in a writable place."""
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a directory; expected a file path")
    _check_parent(path, what, "a file")
    if path.exists() and not overwrite:
        raise ValueError(f"{what} {str(path)!r} exists; expected a new file (or pass --overwrite)")


def _check_parent(path: Path, what: str, kind: str) -> None:
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(
            f"{what} {str(path)!r} lies under the file {str(parent)!r}; expected {kind} path"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(
            f"{what} {str(path)!r} is in {str(parent)!r}, which is not writable; "
            f"expected {kind} in a writable place"
        )


def has_content(path: Path) -> bool:
    """True for a directory holding anything but its lock file."""
    return path.is_dir() and any(p.name != LOCK for p in path.iterdir())


# ------------------------------------------------------------------ install by swap
def write_dir(path: Path, layout: Any, overwrite: bool = False, what: str = "--out") -> None:
    """Write a whole output folder at once: ``layout(staging)`` fills a folder beside
    ``path``, which then replaces ``path`` (refused if ``path`` is not empty, unless
    ``overwrite``). Nothing is left behind on error, no lock file in the result."""
    check_out_dir(path, what)
    held: list[str] = []
    try:
        if has_content(path):
            if not overwrite:
                _refuse_if_busy(path)
                raise ValueError(
                    f"{what} {str(path)!r} exists and is not empty; expected a new or "
                    "empty folder (or pass --overwrite)"
                )
            held.append(_acquire(path))
        install_dir(path, layout, held)
        (path / LOCK).unlink(missing_ok=True)
    finally:
        _release_all(held)


def install_dir(path: Path, layout: Any, held: list[str] | None = None) -> None:
    """Build a directory with ``layout(staging)`` beside ``path`` and move it to ``path``.

    A fresh ``path`` (absent or empty) gets the staging folder by one rename, which fails
    if another writer got there first. A ``path`` this process holds the lock of is
    swapped with the staging folder in one ``RENAME_EXCHANGE``, and the old content then
    removed. ``held`` (a writer's lock keys) then holds the new directory's lock.
    """
    held = [] if held is None else held
    path.absolute().parent.mkdir(parents=True, exist_ok=True)
    _sweep(path)
    staging = path.with_name(f".{path.name}{STAGING}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        stage_key = _acquire(staging)
        layout(staging)
        _fsync_dir(staging)
        key = _key(path)
        if key not in _LOCKS and path.is_dir() and not has_content(path) and any(path.iterdir()):
            held.append(_acquire(path))  # only a lock left by a claim: take it over
        if key in _LOCKS:
            old = _exchange(staging, path)
            old_fd, users = _LOCKS[key]
            _LOCKS[key] = [_LOCKS.pop(stage_key)[0], users + (key not in held)]
            if key not in held:
                held.append(key)
            os.close(old_fd)
            shutil.rmtree(old, ignore_errors=True)
        else:
            _rename_fresh(staging, path)
            _LOCKS[key] = _LOCKS.pop(stage_key)
            held.append(key)
        _fsync_dir(path.absolute().parent)
    except BaseException:
        _release(_key(staging))
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _rename_fresh(staging: Path, path: Path) -> None:
    try:
        os.rename(staging, path)  # replaces an empty directory; fails on a non-empty one
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        _refuse_if_busy(path)
        raise ValueError(
            f"run directory {str(path)!r} was just created by another process; "
            "expected a new path (or pass --overwrite)"
        ) from None


def _exchange(staging: Path, path: Path) -> Path:
    """Swap two directories atomically; returns where the old content of ``path`` now is."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if (
            renameat2(at_fdcwd, os.fsencode(staging), at_fdcwd, os.fsencode(path), rename_exchange)
            == 0
        ):
            return staging
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), str(path))
    # no atomic exchange on this system: two renames; a crash between them leaves the old
    # run whole under the hidden name
    old = staging.with_name(staging.name + "-old")
    os.rename(path, old)
    os.rename(staging, path)
    return old


def _sweep(path: Path) -> None:
    """Remove replacements of ``path`` left by dead processes (their lock is free)."""
    if not path.exists():
        return  # a crash between the two fallback renames: keep the old run for the user
    for p in path.absolute().parent.glob(f".{path.name}{STAGING}*"):
        if p.is_dir() and _key(p) not in _LOCKS and _holder(p) is None:
            shutil.rmtree(p, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ locks
def _key(path: Path) -> str:
    return os.path.realpath(path)


def _acquire(directory: Path) -> str:
    """Take ``directory``'s lock (shared by this process's writers); ``ValueError`` if
    another process holds it. Returns the key to release it with."""
    key = _key(directory)
    if key in _LOCKS:
        _LOCKS[key][1] += 1
        return key
    while True:
        fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            _refuse_if_busy(directory)
            continue  # released meanwhile: try again
        if _same_file(directory / LOCK, fd):
            break
        os.close(fd)  # the directory was swapped away between open and flock
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _LOCKS[key] = [fd, 1]
    return key


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _holder(directory: Path) -> str | None:
    """The pid holding ``directory``'s lock ("another process" if unreadable), else None."""
    if _key(directory) in _LOCKS:
        return None  # this process
    try:
        fd = os.open(directory / LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.read(fd, 32).decode(errors="replace").strip()
        return f"pid {text}" if text.isdigit() else "another process"
    finally:
        os.close(fd)
    return None


def writer(directory: str | os.PathLike[str]) -> str | None:
    """Who holds ``directory``'s lock ("pid 123"), if another live process writes it."""
    return _holder(Path(directory))


def _refuse_if_busy(directory: Path) -> None:
    holder = _holder(directory)
    if holder is not None:
        raise ValueError(
            f"run directory {str(directory)!r} is in use by {holder}; expected a "
            "directory no other morpho process is writing (wait for it or stop it)"
        )


def _release(key: str) -> None:
    entry = _LOCKS.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        os.close(entry[0])
        del _LOCKS[key]


def _release_all(keys: list[str]) -> None:
    for key in keys:
        _release(key)
    keys.clear()


# ------------------------------------------------------------------ readers
def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records of a ``.jsonl`` file (an absent file reads as empty).

    Raises:
        ValueError: a line is not a JSON object (naming the file and the line).
    """
    p = Path(path)
    if not p.exists():
        return []
    return parse_jsonl(p.read_text(encoding="utf-8", errors="replace"), p)


def parse_jsonl(text: str, path: Path, first_line: int = 1) -> list[dict[str, Any]]:
    """The records of ``text``, lines of ``path`` from line number ``first_line`` on
    (readers that follow a growing log parse what was appended since they last read).

    Raises:
        ValueError: a line is not a JSON object (naming the file and the line).
    """
    records = []
    for n, line in enumerate(text.splitlines(), first_line):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{str(path)!r} line {n} is not valid JSON ({e.msg}); expected one JSON object "
                "per line (a truncated file?)"
            ) from None
        if not isinstance(record, dict):
            raise ValueError(f"{str(path)!r} line {n} is not a JSON object; expected one per line")
        records.append(record)
    return records


def snapshot_paths(run: str | os.PathLike[str]) -> list[Path]:
    """The run's snapshots in step order."""
    return sorted((Path(run) / "snapshots").glob("step_*.npz"))

"""Files at the bottom of the engine: the one atomic writer and the TOML reader and writer.

    atomic_write(path, lambda f: f.write(data))     # binary file object
    with atomic_path(path) as tmp: torch.save(obj, tmp)
    cfg = load_toml("my.toml"); text = dump_toml(cfg)

A crash or an error leaves the old file or the new one, never a half-written file.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from morpho.coerce import to_plain

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def atomic_write(path: str | os.PathLike[str], write: Callable[..., object]) -> None:
    """Write a file atomically with ``write(binary_file)``; see :func:`atomic_path`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix) to write; then fsync it, give
    it the mode a new file gets under the user's umask, and rename it over ``path``.

    The one atomic writer of the project: a crash or an error leaves the old file or
    the new one, never a half-written file (the temporary file is removed on error).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=target.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600
        os.replace(tmp, target)
    except OSError as e:  # name the file being written (a full disk names none)
        if e.errno is not None and e.filename in (None, tmp):
            raise OSError(e.errno, e.strerror, str(target)) from e
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def not_a_readable_file(path: Path) -> str | None:
    """What keeps ``path`` from being read as a regular file ("does not exist", "is a
    directory", "is a FIFO", "is a device" …), or None when it can be read."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    kinds = {
        stat.S_ISDIR: "is a directory",
        stat.S_ISFIFO: "is a FIFO (named pipe)",
        stat.S_ISCHR: "is a character device",
        stat.S_ISBLK: "is a block device",
        stat.S_ISSOCK: "is a socket",
    }
    for test, what in kinds.items():
        if test(mode):
            return what
    return None if os.access(path, os.R_OK) else "is not readable (permission denied)"


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config; ``ValueError`` with the file name on a missing or invalid file."""
    p = Path(path)
    if (why := not_a_readable_file(p)) is not None:
        raise ValueError(f"config file {str(p)!r} {why}; expected a UTF-8 TOML file")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"config file {str(p)!r} is not valid TOML: {e}") from None


def dump_toml(data: dict[str, Any]) -> str:
    """``data`` as TOML text (tuples as arrays, ``None`` values left out)."""
    import tomli_w  # only writers need it (GPU images often lack it; reading is stdlib)

    return tomli_w.dumps(to_plain(data))

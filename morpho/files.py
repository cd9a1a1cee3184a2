"""Files at the bottom of the engine: the one atomic writer and the TOML reader and writer.

    atomic_write(path, lambda f: f.write(data))     # binary file object
    with atomic_path(path) as tmp: torch.save(obj, tmp)
    cfg = load_toml("my.toml"); text = dump_toml(cfg)

A crash or an error leaves the old file or the new one, never a half-written file.
"""

from __future__ import annotations

import os
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
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config; ``ValueError`` with the file name on a missing or invalid file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"config file {str(p)!r} does not exist; expected a TOML file")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"config file {str(p)!r} is not valid TOML: {e}") from None


def dump_toml(data: dict[str, Any]) -> str:
    """``data`` as TOML text (tuples as arrays, ``None`` values left out)."""
    import tomli_w  # only writers need it (GPU images often lack it; reading is stdlib)

    return tomli_w.dumps(to_plain(data))

"""The atomic writer and the TOML reader/writer (morpho/files.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from morpho.files import atomic_write, dump_toml, load_toml


def test_an_error_while_writing_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "bench.json"
    atomic_write(target, lambda f: f.write(b"old"))

    def half_then_fail(f):  # type: ignore[no-untyped-def]
        f.write(b"ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]


def test_toml_round_trip_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    atomic_write(path, lambda f: f.write(dump_toml({"a": {"b": (1, 2), "c": None}}).encode()))
    assert load_toml(path) == {"a": {"b": [1, 2]}}
    with pytest.raises(ValueError, match="does not exist; expected a TOML file"):
        load_toml(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("a = [")
    with pytest.raises(ValueError, match="is not valid TOML"):
        load_toml(tmp_path / "bad.toml")

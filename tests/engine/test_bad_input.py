"""Bad input: one line naming what was expected and what came, exit code 2, nothing on disk.

One test per class of bad input to ``morpho grow`` (and the other commands' names).
"""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from morpho.cli import app

runner = CliRunner()


def _grow(tmp_path, *args: str, toml: str | None = None):
    out = tmp_path / "run"
    extra = []
    if toml is not None:
        (tmp_path / "c.toml").write_text(toml)
        extra = ["--config", str(tmp_path / "c.toml")]
    result = runner.invoke(app, ["grow", "--quiet", "--out", str(out), *extra, *args])
    return result, out


def _assert_refused(result, out, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not out.exists(), "a refused run must leave no run directory"


@pytest.mark.parametrize(
    ("toml", "fragments"),
    [
        ("[train]\nstepz = 3\n", ["stepz", "expected one of", "steps"]),
        ("[growth]\nrate = 3\n", ["rate", "expected one of"]),
        ("[nework]\nd_cell = 8\n", ["nework", "expected one of", "network"]),
    ],
)
def test_unknown_config_keys(tmp_path, toml, fragments):
    _assert_refused(*_grow(tmp_path, toml=toml), *fragments)


@pytest.mark.parametrize(
    ("toml", "fragments"),
    [
        ('[train]\nsteps = "many"\n', ["train.steps", "expected int", "many"]),
        ("[network]\nlevel_sizes = 4\n", ["level_sizes", "expected a list"]),
        ("[train]\nlr = true\n", ["train.lr", "expected float"]),
    ],
)
def test_wrong_types(tmp_path, toml, fragments):
    _assert_refused(*_grow(tmp_path, toml=toml), *fragments)


@pytest.mark.parametrize(
    ("args", "toml", "fragments"),
    [
        (["--steps", "-5"], None, ["train.steps", ">= 0", "-5"]),
        ([], "[growth]\ntau = -1.0\n", ["tau", "-1.0"]),
        (
            [],
            "[growth]\nmax_cells = 3\n",
            ["max_cells", "4 cells", "3"],
        ),  # the lang default: 1-1-1-1
        ([], "[growth]\nmax_params = 1000\n", ["max_params", "1000"]),
        ([], "[train]\nlr = 0.0\n", ["train.lr", "in (0, 10]"]),
    ],
)
def test_out_of_range_values(tmp_path, args, toml, fragments):
    _assert_refused(*_grow(tmp_path, *args, toml=toml), *fragments)


def test_data_files_missing_empty_binary_or_not_utf8(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02\x03 binary")
    (tmp_path / "latin1.txt").write_bytes("café crème".encode("latin-1") * 20)
    cases = {
        "missing.txt": "does not exist",
        "empty.txt": "is empty",
        "blob.bin": "is binary",
        "latin1.txt": "not UTF-8",
    }
    for name, fragment in cases.items():
        result, out = _grow(tmp_path, "--data", str(tmp_path / name))
        _assert_refused(result, out, name, fragment, "expected a UTF-8 text file")


def test_unknown_names(tmp_path):
    _assert_refused(*_grow(tmp_path, "--task", "lnag"), "'lnag'", "expected one of", "lang")
    _assert_refused(*_grow(tmp_path, "--preset", "huge"), "'huge'", "small")
    _assert_refused(*_grow(tmp_path, "--corpus", "wiki"), "'wiki'", "pydoc, stdlib")
    _assert_refused(
        *_grow(tmp_path, toml='[growth]\nrules = ["mitosys"]\n'), "'mitosys'", "mitosis"
    )


def test_unknown_colour_is_refused_by_render(tmp_path):
    out = tmp_path / "frame.png"
    result = runner.invoke(app, ["render", str(tmp_path), "--color", "nope", "--out", str(out)])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: ") and not out.exists()


def test_existing_run_directory_is_not_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    result = runner.invoke(app, ["grow", "--quiet", "--out", str(out), "--steps", "1"])
    assert result.exit_code == 2 and "not empty" in result.output
    assert (out / "keep.txt").read_text() == "precious" and len(list(out.iterdir())) == 1


@pytest.mark.parametrize(
    ("toml", "fragments"),
    [
        ("[train]\nlr = inf\n", ["train.lr", "(0, 10]", "inf"]),
        ("[train]\nlr = nan\n", ["train.lr", "(0, 10]", "nan"]),
        ("[train]\nlr = 1e308\n", ["train.lr", "(0, 10]"]),
        ("[train]\nbatch_size = 1000000000\n", ["batch_size=1000000000", "GiB", "at most"]),
        ("[network]\nd_cell = 1000000000\n", ["d_cell=1000000000", "GiB", "at most"]),
        ("[train]\nseq_len = 1000000\n", ["seq_len=1000000", "GiB"]),
        ("[train]\ndevice = 'tpu'\n", ["train.device", "cpu, cuda, cuda:N or mps", "'tpu'"]),
    ],
)
def test_values_that_cannot_run_are_refused_before_the_run_directory(tmp_path, toml, fragments):
    _assert_refused(*_grow(tmp_path, toml=toml), *fragments)


def test_device_flag_that_names_no_device(tmp_path):
    _assert_refused(*_grow(tmp_path, "--device", "tpu"), "train.device", "'tpu'")


def test_data_too_short_for_one_batch(tmp_path):
    (tmp_path / "short.txt").write_text("hello world " * 5)
    (tmp_path / "one.txt").write_text("x")
    short = ["--data", str(tmp_path / "short.txt")]
    _assert_refused(*_grow(tmp_path, *short), "split has", "expected at least")
    _assert_refused(*_grow(tmp_path, "--data", str(tmp_path / "one.txt")), "expected at least 2")
    long_seq = "[train]\nseq_len = 100000\nbatch_size = 1\n"
    _assert_refused(*_grow(tmp_path, toml=long_seq), "seq_len")


def test_out_that_is_a_file_or_under_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    for out, fragment in (
        (tmp_path / "f", "is a file"),
        (tmp_path / "f" / "run", "under the file"),
    ):
        result = runner.invoke(app, ["grow", "--quiet", "--steps", "1", "--out", str(out)])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and fragment in lines[0] and "expected a directory" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_out_that_is_not_writable(tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o555)
    result, _ = _grow(tmp_path, "--out", str(locked / "run"))
    assert result.exit_code == 2 and "not writable" in result.output
    assert list(locked.iterdir()) == []


def _special(tmp_path, kind: str):
    """A path that exists but is no regular file, and the words that must name it."""
    if kind == "directory":
        (tmp_path / "folder").mkdir()
        return tmp_path / "folder", "is a directory"
    if kind == "fifo":
        os.mkfifo(tmp_path / "pipe")
        return tmp_path / "pipe", "is a FIFO"
    return kind, "is a character device"  # /dev/null, /dev/zero


@pytest.mark.parametrize("kind", ["directory", "fifo", "/dev/null", "/dev/zero"])
@pytest.mark.parametrize(("flag", "expected"), [("--data", "text"), ("--config", "TOML")])
def test_a_special_file_as_input_is_named_for_what_it_is(tmp_path, kind, flag, expected):
    path, what = _special(tmp_path, kind)
    result, out = _grow(tmp_path, flag, str(path), "--steps", "1")
    _assert_refused(result, out, what, f"expected a UTF-8 {expected} file")
    assert "does not exist" not in result.output


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--task", "digits", "--corpus", "stdlib"], ["'corpus'", "--corpus", "lang", "digits"]),
        (["--task", "split-digits", "--data", "x.txt"], ["'data'", "--data", "split-digits"]),
    ],
)
def test_an_option_of_another_task_is_refused_naming_both(tmp_path, args, fragments):
    (tmp_path / "x.txt").write_text("some text " * 50)
    result, out = _grow(tmp_path, *[str(tmp_path / a) if a == "x.txt" else a for a in args])
    _assert_refused(result, out, *fragments)
    assert "__init__" not in result.output


@pytest.mark.parametrize(
    ("args", "toml", "fragments"),
    [
        (["--seed", "99999999999999999999"], None, ["--seed", "4294967295"]),
        (["--seed", "-1"], None, ["--seed", "0"]),
        ([], "[train]\nseed = 99999999999999999999\n", ["train.seed", "4294967295"]),
    ],
)
def test_a_huge_seed_is_range_checked_naming_the_flag(tmp_path, args, toml, fragments):
    result, out = _grow(tmp_path, *args, toml=toml)
    _assert_refused(result, out, *fragments)
    assert "Overflow" not in result.output

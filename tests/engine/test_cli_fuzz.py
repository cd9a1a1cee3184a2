"""A property-based fuzz of the command line: every command, every option, generated bad
(and some good) values. The law: each case exits 0 or 2, never shows a traceback, says
what was wrong in at most 3 lines, and a refused case leaves no new file or folder.

500 cases run in the slow suite (``pytest -m slow``); a fixed sample of them in the
default one. Expensive knobs (steps, frames, epochs …) get small values unless the case
fuzzes them, so a case that happens to be valid finishes in a second or two.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from morpho.cli import app
from morpho.config import RunConfig
from morpho.files import dump_toml
from morpho.grow import grow

pytest.importorskip("pyvista")

TINY = {
    "network": {"d_cell": 8, "n_heads": 1, "mlp_ratio": 1, "level_sizes": [1, 2, 1]},
    "train": {"steps": 3, "batch_size": 2, "seq_len": 16, "eval_batches": 1, "warmup": 1},
    "growth": {"interval": 2, "start": 2, "max_cells": 6},
}
CONFIGS = {  # file name -> contents, written into each case's folder
    "tiny.toml": dump_toml(TINY),
    "lr_inf.toml": "[train]\nlr = inf\n",
    "lr_huge.toml": "[train]\nlr = 1e308\n",
    "batch.toml": "[train]\nbatch_size = 1000000000\n",
    "dcell.toml": "[network]\nd_cell = 1000000000\n",
    "seq.toml": "[train]\nseq_len = 10000000\n",
    "device.toml": "[train]\ndevice = 'tpu'\n",
    "key.toml": "[train]\nstepz = 3\n",
    "notoml.toml": "[train\nsteps = = 3\n",
    "types.toml": '[train]\nsteps = "many"\n',
}
DATA = {"empty.txt": b"", "one.txt": b"x", "short.txt": b"hello " * 5, "blob.bin": b"\x00\x01\xff"}

JUNK = st.sampled_from(["", " ", "-", "--", "nan", "inf", "-inf", "1e999", "0x10", "é", "a\x00b"])
INTS = st.integers(-3, 3).map(str) | st.sampled_from(["-1", "99999999999999999999", "1.5", "x"])
FLOATS = st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e308", "1e-320", "0.5", "2"])
PATHS = st.sampled_from(
    ["FILE", "FILE/sub", "FULL", "FRESH", "", "/proc/nope/x", "a\x00b", "x" * 300, "RUN"]
)
DATAS = st.sampled_from(["missing.txt", *DATA, "FULL", "FILE"])


def choices(*names: str) -> st.SearchStrategy[str]:
    return st.sampled_from(names) | JUNK


OPTIONS: dict[str, dict[str, st.SearchStrategy[str]]] = {
    "grow": {
        "--task": choices("lang", "lnag", "digits"),
        "--preset": choices("small", "huge"),
        "--steps": INTS,
        "--out": PATHS,
        "--seed": INTS,
        "--device": choices("cpu", "tpu", "cuda", "cuda:x", "mps:0"),
        "--data": DATAS,
        "--corpus": choices("pydoc", "stdlib", "wiki"),
        "--config": st.sampled_from([*CONFIGS, "missing.toml", "FULL"]),
        "--resume": PATHS,
        "--checkpoint-every": INTS,
    },
    "sample": {
        "RUN": PATHS,
        "--prompt": st.text(max_size=8),
        "--length": INTS,
        "--temperature": FLOATS,
        "--seed": INTS,
    },
    "bench": {
        "--task": choices("lang", "lnag"),
        "--preset": choices("small", "huge"),
        "--steps": INTS,
        "--out": PATHS,
        "--device": choices("cpu", "tpu"),
        "--data": DATAS,
        "--config": st.sampled_from([*CONFIGS, "missing.toml"]),
        "--rows": choices("morpho", "gru", "morpho,nope", ",,"),
        "--mechanisms": choices("series", "all", "nope", "clocks,x"),
    },
    "stream": {
        "--stream": choices("split-digits", "permuted-digits", "lang-domains", "nope"),
        "--scenario": choices("task", "domain", "class", "nope"),
        "--tasks": INTS,
        "--methods": choices("naive", "morpho", "ewc,si", "nope", ","),
        "--seeds": INTS,
        "--epochs": INTS,
        "--memory": INTS,
        "--out": PATHS,
        "--data": DATAS,
        "--device": choices("cpu", "tpu", "cuda"),
        "--max-train": INTS,
    },
    "render": {
        "RUN": PATHS,
        "--out": st.sampled_from(["m.gif", "m.mp4", "m.png", "m.txt"]) | PATHS,
        "--color": choices("gate", "level", "clock", "repr-entropy", "nope"),
        "--frame": INTS,
        "--frames": INTS,
        "--fps": INTS,
        "--size": choices("320x240", "100000x100000", "321x240", "0x0", "axb", "320x"),
        "--size-by": choices("params", "age", "nope"),
        "--orbit": FLOATS,
        "--wormhole-length": FLOATS,
    },
    "plot": {"RUN": PATHS, "--out": PATHS},
    "export": {
        "RUN": PATHS,
        "--format": choices("vtp", "graphml", "csv"),
        "--out": PATHS | st.sampled_from(["t.graphml"]),
    },
    "rules": {},
}
SAFE = {  # what a case that does not fuzz an expensive knob gets
    "grow": {"--steps": "2", "--config": "tiny.toml", "--out": "FRESH"},
    "bench": {"--steps": "2", "--config": "tiny.toml", "--rows": "morpho", "--out": "FRESH"},
    "stream": {"--methods": "naive", "--epochs": "1", "--max-train": "4", "--out": "FRESH"},
    "render": {"RUN": "RUN", "--frames": "2", "--size": "320x240", "--out": "m.gif"},
    "sample": {"RUN": "RUN", "--length": "3"},
    "plot": {"RUN": "RUN"},
    "export": {"RUN": "RUN"},
    "rules": {},
}


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fuzz") / "run"
    grow(RunConfig.preset("small").merged(TINY), out)
    return out


@contextmanager
def inside(folder: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def prepare(root: Path, seed_run: Path) -> None:
    """The case's folder: config and data files, a file, a full folder and a run."""
    for name, text in CONFIGS.items():
        (root / name).write_text(text)
    for name, data in DATA.items():
        (root / name).write_bytes(data)
    (root / "FILE").write_text("a file")
    (root / "FULL").mkdir()
    (root / "FULL" / "keep.txt").write_text("precious")
    shutil.copytree(seed_run, root / "RUN", ignore=shutil.ignore_patterns(".lock"))


def argv(command: str, options: dict[str, str]) -> list[str]:
    args = [command]
    for name, value in {**SAFE[command], **options}.items():
        args += [value] if name == "RUN" else [name, value]
    return args


def files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.name != ".lock"}


def check_case(command: str, options: dict[str, str], seed_run: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        prepare(root, seed_run)
        before = files(root)
        with inside(root):
            result = CliRunner().invoke(app, argv(command, options))
        output = result.output
        case = f"{argv(command, options)} -> {result.exit_code}:\n{output}"
        assert result.exit_code in (0, 2), case
        assert result.exception is None or isinstance(result.exception, SystemExit), case
        assert "Traceback" not in output, case
        if result.exit_code == 2:
            assert len([line for line in output.splitlines() if line.strip()]) <= 3, case
            assert files(root) == before, f"{case}\nnew: {files(root) - before}"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    command = draw(st.sampled_from(sorted(OPTIONS)))
    names = sorted(OPTIONS[command])
    chosen = draw(st.lists(st.sampled_from(names), max_size=3, unique=True)) if names else []
    return command, {name: draw(OPTIONS[command][name]) for name in chosen}


COMMON = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@settings(max_examples=12, **COMMON)
@given(case=cases())
def test_cli_fuzz_sample(seed_run: Path, case: tuple[str, dict[str, str]]) -> None:
    check_case(*case, seed_run)


@pytest.mark.slow
@settings(max_examples=500, **COMMON)
@given(case=cases())
def test_cli_fuzz_500(seed_run: Path, case: tuple[str, dict[str, str]]) -> None:
    check_case(*case, seed_run)


def test_root_options_and_unknown_commands() -> None:
    for args, code in ((["--version"], 0), (["nope"], 2), (["grow", "--bogus"], 2), ([], 0)):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == code, (args, result.output)
        if code == 2:
            lines = result.output.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), result.output

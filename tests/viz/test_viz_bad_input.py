"""Bad input to ``render``, ``plot`` and ``export``: one line naming what was expected,
exit 2, nothing new on disk — bad ``--out`` paths, bounds on ``--orbit`` / ``--size``,
truncated logs and corrupt snapshots named with their file (and line), a missing extra
named; and output folders that are refused when not empty, replaced whole with
``--overwrite``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyvista")

from typer.testing import CliRunner  # noqa: E402

from morpho.cli import app  # noqa: E402
from morpho.viz.commands import COLORS  # noqa: E402
from morpho.viz.synthetic import synthetic_run  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_run(tmp_path_factory.mktemp("bad") / "run", n_cells=12)


def _files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def refused(root: Path, *args: object, fragments: tuple[str, ...] = ()) -> str:
    """Invoke and check the refusal law; returns the error line."""
    before = _files(root)
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert _files(root) == before, "a refused command wrote something"
    return lines[0]


def test_color_help_lists_every_choice() -> None:
    from morpho.viz.coloring import CHOICES

    assert set(COLORS) == set(CHOICES)
    result = CliRunner().invoke(app, ["render", "--help"], terminal_width=200)
    for name in CHOICES:
        assert name in result.output, name


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--orbit", "nan"], ("--orbit", "finite")),
        (["--orbit", "inf"], ("--orbit", "finite")),
        (["--size", "100000x100000"], ("--size", "7680", "100000x100000")),
        (["--frames", "0"], ("--frames",)),
        (["--fps", "100000"], ("--fps",)),
    ],
)
def test_render_bounds(tmp_path, run_dir, args, fragments) -> None:
    refused(tmp_path, "render", run_dir, "--out", tmp_path / "m.mp4", *args, fragments=fragments)


def test_out_paths_that_cannot_be_written(tmp_path, run_dir) -> None:
    f = tmp_path / "file"
    f.write_text("")
    d = tmp_path / "dir"
    d.mkdir()
    refused(tmp_path, "render", run_dir, "--out", f / "m.mp4", fragments=("under the file",))
    refused(tmp_path, "render", run_dir, "--out", f, fragments=("is not a movie",))
    refused(tmp_path, "render", run_dir, "--frame", "0", "--out", d, fragments=("a still",))
    refused(tmp_path, "plot", run_dir, "--out", f, fragments=("is a file", "directory"))
    refused(tmp_path, "plot", run_dir, "--out", f / "p", fragments=("under the file",))
    refused(tmp_path, "export", run_dir, "--out", f, fragments=("is a file", "directory"))
    refused(tmp_path, "export", run_dir, "--out", f / "e", fragments=("under the file",))
    refused(
        tmp_path,
        "export",
        run_dir,
        "--format",
        "graphml",
        "--out",
        d,
        fragments=("is a directory", "a file path"),
    )


def test_existing_outputs_are_refused_then_replaced_whole_with_overwrite(tmp_path, run_dir):
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "old.png").write_text("stale")
    refused(tmp_path, "plot", run_dir, "--out", plots, fragments=("not empty", "--overwrite"))
    result = CliRunner().invoke(app, ["plot", str(run_dir), "--out", str(plots), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert not (plots / "old.png").exists() and (plots / "growth.png").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    movie = tmp_path / "m.gif"
    movie.write_text("old")
    args = ["render", run_dir, "--out", movie, "--frames", "2", "--size", "320x240"]
    refused(tmp_path, *args, fragments=("exists", "--overwrite"))
    graph = tmp_path / "t.graphml"
    graph.write_text("old")
    refused(tmp_path, "export", run_dir, "--format", "graphml", "--out", graph)


def test_truncated_metrics_line_is_named_with_its_file_and_line(tmp_path, run_dir) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    good = '{"kind": "train", "step": 0, "bpc": 5.0}\n{"kind": "train", "step": 1, "bpc": 4.0}\n'
    (run / "metrics.jsonl").write_text(good + '{"kind": "tra')  # a killed writer's last line
    line = refused(tmp_path, "plot", run, "--out", tmp_path / "p")
    assert "metrics.jsonl" in line and "line 3" in line


def test_corrupt_snapshot_is_named(tmp_path, run_dir) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    snap = sorted((run / "snapshots").glob("*.npz"))[0]
    snap.write_bytes(snap.read_bytes()[:100])
    line = refused(tmp_path, "render", run, "--out", tmp_path / "m.gif", "--frames", "2")
    assert snap.name in line and "expected a .npz written by morpho" in line
    last = sorted((run / "snapshots").glob("*.npz"))[-1]
    last.write_bytes(b"not a zip")
    out = tmp_path / "t.graphml"
    line = refused(tmp_path, "export", run, "--format", "graphml", "--out", out)
    assert last.name in line


@pytest.mark.parametrize(
    ("command", "module"),
    [
        (["plot"], "matplotlib"),
        (["render", "--frames", "2"], "pyvista"),
        (["export", "--format", "vtp"], "pyvista"),
    ],
)
def test_a_missing_viz_extra_is_named(tmp_path, run_dir, monkeypatch, command, module) -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in {module, "matplotlib", "pyvista"} or name.startswith(
            "morpho.viz."
        ):
            if name != "morpho.viz.commands":
                monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    out = tmp_path / ("x.gif" if command[0] == "render" else "x")
    args = [command[0], run_dir, "--out", out, *command[1:]]
    from morpho.extras import install_hint

    hint = install_hint("viz", ["pyvista"])  # this install's one: a checkout's own path
    refused(tmp_path, *args, fragments=("viz extra", hint, module))
    assert "[viz]" in hint and "-e " in hint  # the tests run from a source checkout


def test_exports_are_refused_over_old_outputs_then_replaced_with_overwrite(tmp_path, run_dir):
    folder = tmp_path / "vtp"
    folder.mkdir()
    (folder / "stale.vtp").write_text("old")
    refused(tmp_path, "export", run_dir, "--out", folder, fragments=("not empty", "--overwrite"))
    args = ["export", str(run_dir), "--out", str(folder), "--overwrite"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert not (folder / "stale.vtp").exists() and (folder / "run.pvd").is_file()
    assert sorted(folder.glob("step_*.vtp")), "the folder was replaced by an empty one"
    graph = tmp_path / "t.graphml"
    graph.write_text("old")
    args = ["export", str(run_dir), "--format", "graphml", "--out", str(graph), "--overwrite"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert graph.read_text().startswith("<?xml") and "<graph" in graph.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

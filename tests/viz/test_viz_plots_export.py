"""``morpho plot`` and ``morpho export``: the files they write, read back with their readers.

Also holds the viz side of the dependency law (DESIGN §1): the CLI loads ``viz.commands``
at start-up, which imports neither pyvista nor matplotlib (they load when a command runs);
the engine side is ``test_layering.py``.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

pytest.importorskip("pyvista")

import imageio.v3 as iio  # noqa: E402
import pyvista as pv  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import morpho.viz  # noqa: E402
from morpho.cli import app  # noqa: E402
from morpho.viz.plots import MECHANISMS, PLOTS, event_counts, mechanism_fields  # noqa: E402
from morpho.viz.runs import load_run  # noqa: E402
from morpho.viz.synthetic import synthetic_run  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_run(tmp_path_factory.mktemp("plots") / "run", n_cells=24)


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, [str(a) for a in args])


def test_plot_writes_every_panel(run_dir: Path, tmp_path: Path) -> None:
    result = invoke("plot", run_dir, "--out", tmp_path / "plots")
    assert result.exit_code == 0, result.output
    for name in PLOTS:
        image = iio.imread(tmp_path / "plots" / f"{name}.png")
        assert image.shape[0] > 300 and image[..., :3].std() > 10, name
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(
        f"{n}.png" for n in PLOTS
    )  # no temporary files left, no mechanisms.png


def test_plot_works_without_events(run_dir: Path, tmp_path: Path) -> None:
    """Growth off: an empty events.jsonl still gives every panel (the default folder)."""
    bare = tmp_path / "bare"
    (bare / "snapshots").mkdir(parents=True)
    for snap in sorted((run_dir / "snapshots").glob("*.npz"))[:3]:
        (bare / "snapshots" / snap.name).write_bytes(snap.read_bytes())
    (bare / "events.jsonl").write_text("")
    result = invoke("plot", bare)
    assert result.exit_code == 0, result.output
    assert all((bare / "plots" / f"{name}.png").stat().st_size > 1000 for name in PLOTS)


def with_mechanisms(run_dir: Path, out: Path, fields: tuple[str, ...]) -> Path:
    """A copy of ``run_dir`` whose train records carry ``fields`` (monitors) and whose
    events add two inserts (mitosis in series) and wormhole connects."""
    shutil.copytree(run_dir, out)
    lines = []
    for line in (out / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == "train":
            record |= {k: 0.01 * record["step"] - 0.2 for k in fields}
        lines.append(json.dumps(record))
    (out / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with (out / "events.jsonl").open("a") as f:
        for e in EXTRA_EVENTS:
            f.write(json.dumps(e) + "\n")
    return out


EXTRA_EVENTS = [
    {"step": 10, "kind": "insert", "cells": [3], "new_cells": [90]},
    {"step": 20, "kind": "insert", "cells": [5], "new_cells": [91]},
    {"step": 20, "kind": "connect", "cells": [1, 7], "new_cells": [], "stats": {"wormhole": 1.0}},
    {"step": 30, "kind": "connect", "cells": [2, 8], "new_cells": [], "stats": {"wormhole": 1.0}},
    {"step": 30, "kind": "connect", "cells": [2, 9], "new_cells": [], "stats": {"wormhole": 0.0}},
]


def test_mechanisms_panel_when_monitors_are_logged(run_dir: Path, tmp_path: Path) -> None:
    fake = with_mechanisms(run_dir, tmp_path / "mech", tuple(MECHANISMS))
    result = invoke("plot", fake)
    assert result.exit_code == 0, result.output
    assert "mechanisms.png" in result.output
    image = iio.imread(fake / "plots" / "mechanisms.png")
    assert image.shape[0] > 400 and image[..., :3].std() > 10
    assert sorted(p.name for p in (fake / "plots").iterdir()) == sorted(
        f"{n}.png" for n in (*PLOTS, "mechanisms")
    )


def test_mechanism_fields_are_the_logged_train_ones() -> None:
    """Only train records with a value count; the order is that of MECHANISMS."""
    records = [
        {"kind": "train", "step": 0, "bpc": 7.0, "ponder_cost": 2.1},
        {"kind": "train", "step": 10, "lyapunov": -0.2, "path_norm": None},
        {"kind": "eval", "step": 10, "ponder_passes": 2.0},
    ]
    assert mechanism_fields(records) == ["lyapunov", "ponder_cost"]
    assert mechanism_fields([{"kind": "train", "step": 0, "bpc": 7.0}]) == []


def test_event_counts_separate_inserts_and_wormholes(run_dir: Path, tmp_path: Path) -> None:
    before = event_counts(load_run(run_dir).events)
    after = event_counts(load_run(with_mechanisms(run_dir, tmp_path / "ev", ())).events)
    added = {k: after[k] - before.get(k, 0) for k in after}
    assert added == {**dict.fromkeys(before, 0), "insert": 2, "connect": 1, "connect (wormhole)": 2}
    assert list(after) == sorted(after)  # series in a stable order: stable colours
    assert event_counts([{"kind": "connect", "stats": {}}, {"kind": "connect"}]) == {"connect": 2}


def test_plot_of_a_missing_run_exits_2(tmp_path: Path) -> None:
    result = invoke("plot", tmp_path / "nope")
    assert result.exit_code == 2 and result.output.startswith("error: run directory")


def test_vtp_export_round_trips_every_snapshot(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "vtp"
    result = invoke("export", run_dir, "--format", "vtp", "--out", out)
    assert result.exit_code == 0, result.output
    run = load_run(run_dir)
    assert len(list(out.glob("*.vtp"))) == len(run.snapshots)
    reader = pv.get_reader(out / "run.pvd")
    assert reader.time_values == [float(s.step) for s in run.snapshots]
    for s in (run.snapshots[0], run.snapshots[-1]):
        mesh = pv.read(out / f"step_{s.step:08d}.vtp")
        assert (mesh.n_points, mesh.n_lines) == (s.n_cells, s.n_edges)
        assert np.allclose(mesh.points, s.cells["pos"])
        assert np.array_equal(mesh.point_data["cell_id"], s.ids)
        assert np.allclose(mesh.point_data["fe_ema"], s.cells["fe_ema"])
        assert np.allclose(mesh.cell_data["strength"], s.edges["strength"])
        assert np.array_equal(mesh.lines.reshape(-1, 3)[:, 1:].T, s.edges["edge_index"])
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_graphml_export_is_the_final_tissue(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.graphml"
    result = invoke("export", run_dir, "--format", "graphml", "--out", out)
    assert result.exit_code == 0, result.output
    final = load_run(run_dir).snapshots[-1]
    g = nx.read_graphml(out)
    assert (g.number_of_nodes(), g.number_of_edges()) == (final.n_cells, final.n_edges)
    assert {int(n) for n in g.nodes} == set(final.ids.tolist())


def test_unknown_export_format_exits_2(run_dir: Path, tmp_path: Path) -> None:
    result = invoke("export", run_dir, "--format", "csv", "--out", tmp_path / "x")
    assert result.exit_code == 2
    assert result.output.strip() == "error: unknown --format 'csv'; expected one of: vtp, graphml"
    assert not (tmp_path / "x").exists()


def top_level_imports(path: Path) -> set[str]:
    """Modules a file imports at module level (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_pyvista_loads_only_when_a_frame_is_drawn() -> None:
    """The CLI loads viz.commands at start-up: it must not pull pyvista or matplotlib in;
    of the viz modules only the scene imports pyvista at module level."""
    viz = Path(morpho.viz.__file__).parent
    heavy = ("pyvista", "vtk", "matplotlib")
    for path in sorted(viz.glob("*.py")):
        imports = top_level_imports(path)
        uses = {m for m in imports if m.split(".")[0] in heavy}
        if path.name == "commands.py":
            assert not uses and not {m for m in imports if m.startswith("morpho")}, uses
        elif path.name != "scene.py":
            assert not {m for m in uses if m.startswith(("pyvista", "vtk"))}, path.name


def test_many_categories_get_distinct_colours() -> None:
    import numpy as np

    from morpho.viz.coloring import PALETTE, CellColors

    few = CellColors("level", [np.arange(4)], categories=tuple(f"level {i}" for i in range(4)))
    assert [s[0] for s in few.swatches()] == ["level 0", "level 1", "level 2", "level 3"]
    many = CellColors("level", [np.arange(13)], categories=tuple(f"level {i}" for i in range(13)))
    assert len(many.categories) > len(PALETTE)
    colours = {tuple(np.round(c, 6)) for _, c in many.swatches()}
    assert len(colours) == 13  # no two levels share a colour
    np.testing.assert_allclose(many.rgb(np.arange(13)), np.array([c for _, c in many.swatches()]))


def test_clock_and_entropy_colour_choices(tmp_path) -> None:
    """--color clock: one category per period; --color repr-entropy: a continuous map."""
    import numpy as np

    from morpho.viz.coloring import CHOICES

    class Snap:
        cells = {"clock": np.array([1, 1, 2, 4]), "repr_entropy": np.array([0.5, 1.0, 1.5, 2.0])}
        n_cells = 4

        def cell(self, name, default=0.0):
            return self.cells[name].astype(float) if name in self.cells else np.full(4, default)

    assert CHOICES["clock"].values(Snap(), {}).tolist() == [1, 1, 2, 4]
    assert CHOICES["clock"].category == "every" and not CHOICES["clock"].cmap
    assert CHOICES["repr-entropy"].values(Snap(), {}).tolist() == [0.5, 1.0, 1.5, 2.0]
    assert CHOICES["repr-entropy"].cmap


@pytest.mark.parametrize("order", [("graphml", "vtp"), ("vtp", "graphml")])
def test_both_exports_fit_in_one_run_by_default(run_dir: Path, tmp_path: Path, order) -> None:  # type: ignore[no-untyped-def]
    """Each format has its own default path: the second export neither is refused nor,
    with --overwrite, deletes the first."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    for fmt in order:
        result = invoke("export", run, "--format", fmt)
        assert result.exit_code == 0, result.output
    assert (run / "export" / "tissue.graphml").is_file()
    assert (run / "export" / "vtp" / "run.pvd").is_file()
    for fmt in order:
        assert invoke("export", run, "--format", fmt, "--overwrite").exit_code == 0
    assert (run / "export" / "tissue.graphml").is_file()
    assert (run / "export" / "vtp" / "run.pvd").is_file()

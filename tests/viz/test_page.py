"""The interactive page (``morpho render RUN --out x.html``) without a browser: its data
decode back to the run (cells, the movie's layout and colours, edges, statistics, the event
that made each cell), the page is self-contained, and bad input is refused with one line,
exit 2 and nothing written."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import torch  # noqa: E402
from torch_geometric.data import Data  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from morpho.cli import app  # noqa: E402
from morpho.energy import wiring_cost  # noqa: E402
from morpho.rundir import LOCK  # noqa: E402
from morpho.viz.coloring import CHOICES, cell_colors  # noqa: E402
from morpho.viz.layout import stable_layout  # noqa: E402
from morpho.viz.page import page_html, render_page  # noqa: E402
from morpho.viz.page_data import page_payload  # noqa: E402
from morpho.viz.runs import load_run  # noqa: E402
from morpho.viz.synthetic import synthetic_run  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_run(tmp_path_factory.mktemp("page") / "run", n_cells=30, fan_in=2)


@pytest.fixture(scope="module")
def payload(run_dir: Path) -> dict:
    return page_payload(load_run(run_dir))


def decode(t: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(t["b64"]), dtype=np.dtype(t["dtype"]).newbyteorder("<"))


def per_snapshot(payload: dict, values: np.ndarray, offsets: str = "cellOffset") -> list:
    off = payload["snap"][offsets]
    return [values[off[k] : off[k + 1]] for k in range(len(off) - 1)]


def test_cells_and_layout_decode_to_the_movies(run_dir: Path, payload: dict) -> None:
    run = load_run(run_dir)
    s = payload["snap"]
    table = np.array(payload["cells"]["id"])
    rows = per_snapshot(payload, decode(s["cell"]).astype(int))
    pos = per_snapshot(payload, decode(s["pos"]).reshape(-1, 3).astype(float))
    step = np.array(s["posScale"])
    for snap, r, q, layout in zip(
        run.snapshots, rows, pos, stable_layout(run.snapshots), strict=True
    ):
        np.testing.assert_array_equal(table[r], snap.ids)
        # quantised to 1/65535 of the run's box: half a step off at most
        assert np.all(np.abs(np.array(s["posLo"]) + q * step - layout) <= 0.51 * step + 1e-9)
    assert payload["nCells"] == [snap.n_cells for snap in run.snapshots]


def test_every_colour_choice_decodes_to_the_movies_colours(run_dir: Path, payload: dict) -> None:
    run = load_run(run_dir)
    assert set(payload["colors"]) == set(CHOICES)
    for name, page in payload["colors"].items():
        colors = cell_colors(run, name)
        table = np.array(page["table"]).reshape(-1, 3) / 255
        codes_k = per_snapshot(payload, decode(page["codes"]))
        for values, codes in zip(colors.values, codes_k, strict=True):
            # a continuous map is a 256-entry table: within one entry's step of the movie
            tol = 1 / 255 + (0 if colors.categorical else 0.03)
            np.testing.assert_allclose(table[codes.astype(int)], colors.rgb(values), atol=tol)


def test_edges_and_statistics_decode_to_the_snapshots(run_dir: Path, payload: dict) -> None:
    run = load_run(run_dir)
    s = payload["snap"]
    table = np.array(payload["cells"]["id"])
    runs = {k: decode(v).astype(int) for k, v in s["edgeRuns"].items()}
    style = per_snapshot(payload, decode(s["edgeStyle"]).astype(int), "edgeOffset")
    stats = {k: per_snapshot(payload, decode(v)) for k, v in s["stats"].items()}
    s_max = max(np.abs(snap.edges["strength"]).max() for snap in run.snapshots)
    for k, snap in enumerate(run.snapshots):
        # the page's edges of snapshot k: the runs spanning it, in run order
        active = (runs["first"] <= k) & (k <= runs["last"])
        shown = zip(table[runs["src"][active]], table[runs["dst"][active]], style[k], strict=True)
        src, dst = snap.edge_ends()
        pos = snap.cells["pos"]
        length = np.linalg.norm(
            pos[snap.edges["edge_index"][0]] - pos[snap.edges["edge_index"][1]], axis=1
        )
        weight = np.round(np.abs(snap.edges["strength"]) / s_max * 127) + 128 * (length > 4.0)
        assert sorted(map(tuple, shown)) == sorted(zip(src, dst, weight.astype(int), strict=True))
        np.testing.assert_allclose(stats["F"][k], snap.cells["fe_ema"], rtol=1e-6)
        np.testing.assert_allclose(stats["gate"][k], snap.cells["gate_ema"], rtol=1e-6)
        tissue = Data(
            pos=torch.from_numpy(snap.cells["pos"]).float(),
            edge_index=torch.from_numpy(snap.edges["edge_index"]),
            num_nodes=snap.n_cells,
        )
        np.testing.assert_allclose(stats["W"][k], wiring_cost(tissue).numpy(), rtol=1e-5)
    # each edge is stored once per stretch of snapshots, not once per snapshot
    assert len(runs["first"]) < 0.6 * sum(snap.n_edges for snap in run.snapshots)


def test_each_cell_points_at_the_event_that_made_it(run_dir: Path, payload: dict) -> None:
    cells, events = payload["cells"], payload["events"]
    made = 0
    for cid, parent, k in zip(cells["id"], cells["parent"], cells["madeBy"], strict=True):
        if parent < 0:
            assert k == -1, cid
            continue
        assert cid in events[k]["new_cells"] and parent in events[k]["cells"], (cid, events[k])
        assert events[k]["reason"]
        made += 1
    assert made > 0
    steps = payload["steps"]
    for e in events:  # the first snapshot that shows the event
        assert steps[e["snap"]] >= e["step"] and (
            e["snap"] == 0 or steps[e["snap"] - 1] < e["step"]
        )


def test_the_page_is_self_contained_and_its_data_round_trips(payload: dict) -> None:
    hostile = "</script><script>alert(1)</script> <!-- {{js}}"
    events = [{**payload["events"][0], "reason": hostile}, *payload["events"][1:]]
    page = page_html({**payload, "events": events, "run": "a<b & {{data}}"})
    assert "://" not in page, "the page refers to something outside itself"
    assert not re.search(r"\b(src|href)\s*=", page)
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S)
    assert len(scripts) == 2, "an event's text ended a <script> element early"
    data = json.loads(scripts[0])
    assert data["events"][0]["reason"] == hostile
    assert data["run"] == "a<b & {{data}}"
    assert data["steps"] == payload["steps"]


# ------------------------------------------------------------------ bad input
def _files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def refused(root: Path, *args: object, fragments: tuple[str, ...] = ()) -> None:
    before = _files(root)
    result = CliRunner().invoke(app, ["render", *(str(a) for a in args)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert _files(root) == before, "a refused command wrote something"


def test_cli_writes_a_page_and_refuses_an_existing_one(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "growth.html"
    result = CliRunner().invoke(
        app, ["render", str(run_dir), "--out", str(out), "--color", "level"]
    )
    assert result.exit_code == 0, result.output
    assert '"color":"level"' in out.read_text()
    out.write_text("mine")
    refused(tmp_path, run_dir, "--out", out, fragments=("exists", "--overwrite"))
    assert out.read_text() == "mine"
    result = CliRunner().invoke(app, ["render", str(run_dir), "--out", str(out), "--overwrite"])
    assert result.exit_code == 0 and out.read_text().startswith("<!doctype html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["growth.html"]  # no temporary left


def test_cli_refuses_runs_without_snapshots_or_with_a_corrupt_one(
    run_dir: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    (empty / "snapshots").mkdir(parents=True)
    refused(tmp_path, empty, "--out", tmp_path / "a.html", fragments=("no snapshots",))
    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    snap = sorted((bad / "snapshots").iterdir())[2]
    snap.write_bytes(snap.read_bytes()[:200])
    refused(tmp_path, bad, "--out", tmp_path / "b.html", fragments=(snap.name, "cannot be read"))
    refused(tmp_path, run_dir, "--out", tmp_path / "c.html", "--frame", 3, fragments=("--frame",))
    refused(tmp_path, run_dir, "--out", tmp_path / "d.html", "--color", "mood", fragments=("mood",))


def _writer(run: Path) -> subprocess.Popen:
    """A process that holds ``run``'s lock as a writing ``morpho grow`` does (an ``flock``
    on ``.lock`` holding its pid; plain fcntl: importing morpho would take seconds)."""
    code = textwrap.dedent(
        f"""
        import fcntl, os, time
        fd = os.open({str(run / LOCK)!r}, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        print("ready", flush=True)
        time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_run_still_being_written_is_refused_a_finished_one_rendered(
    run_dir: Path, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    shutil.copytree(run_dir, live)
    proc = _writer(live)
    try:
        render_page(live, tmp_path / "done.html")  # summary.json written: the run is over
        (live / "summary.json").unlink()
        refused(
            tmp_path,
            live,
            "--out",
            tmp_path / "live.html",
            fragments=("still being written", f"pid {proc.pid}"),
        )
    finally:
        proc.kill()
        proc.wait()
    render_page(live, tmp_path / "after.html")  # the writer is gone: a crashed run renders


def test_no_chromium_binary_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from morpho.viz.headless import Browser

    monkeypatch.setenv("MORPHO_CHROMIUM", "no-such-chromium-binary")
    with pytest.raises(ValueError, match="no Chromium binary found; expected one of"):
        Browser()

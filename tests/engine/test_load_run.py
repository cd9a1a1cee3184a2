"""``morpho.load_run``: a run directory read back as tables — every ``metrics.jsonl`` and
``events.jsonl`` line a row (DataFrame or dict, the same values), every snapshot a row with
its step and size, the config and summary as written; clear errors on bad input; the
README's example runs as written."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import tiny_run

import morpho
import morpho.runs
from morpho.config import RunConfig
from morpho.files import tomllib
from morpho.grow import grow

TINY = tiny_run(20)
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("load") / "run"
    grow(RunConfig.preset("small").merged(TINY), out)
    return out


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def snapshot_files(run: Path) -> list[tuple[int, int]]:
    """(step, cells) of each snapshot file, read with numpy alone."""
    out = []
    for p in sorted((run / "snapshots").glob("step_*.npz")):
        with np.load(p) as z:
            out.append((int(p.stem.split("_")[1]), int(z["cell_id"].shape[0])))
    return out


def assert_row_is_record(row: dict[str, Any], record: dict[str, Any]) -> None:
    """A frame row holds the record's values; what the record lacks (or holds as None) is NaN."""
    for key, value in row.items():
        if key not in record or record[key] is None:
            assert value is None or (isinstance(value, float) and math.isnan(value)), key
        else:
            assert value == record[key], (key, value, record[key])
    assert set(record) <= set(row)


def test_lists_are_the_lines_of_the_run(run: Path) -> None:
    r = morpho.load_run(run, as_frames=False)
    assert r.metrics == lines(run / "metrics.jsonl")
    assert r.events == lines(run / "events.jsonl") and r.events, "the tiny run grows"
    assert [(s["step"], s["cells"]) for s in r.snapshots] == snapshot_files(run)
    assert {s["kind"] for s in r.snapshots} >= {"start", "growth", "end"}
    assert r.config == tomllib.loads((run / "config.toml").read_text())
    assert r.summary == json.loads((run / "summary.json").read_text())


def test_frames_hold_the_same_records(run: Path) -> None:
    pytest.importorskip("pandas")
    r = morpho.load_run(run)
    for frame, path in ((r.metrics, "metrics.jsonl"), (r.events, "events.jsonl")):
        records = lines(run / path)
        assert len(frame) == len(records)
        for row, record in zip(frame.to_dict("records"), records, strict=True):
            assert_row_is_record(row, record)
    evals = [x["val_bpc"] for x in lines(run / "metrics.jsonl") if x["kind"] == "eval"]
    assert r.metrics[r.metrics.kind == "eval"].val_bpc.tolist() == evals
    assert list(zip(r.snapshots.step, r.snapshots.cells, strict=True)) == snapshot_files(run)


def test_without_pandas_lists_and_frames_refused(run: Path, monkeypatch) -> None:
    monkeypatch.setattr(morpho.runs, "find_spec", lambda name: None)
    assert isinstance(morpho.load_run(run).metrics, list)
    with pytest.raises(ValueError, match="needs pandas"):
        morpho.load_run(run, as_frames=True)


def test_an_empty_events_table_still_has_its_columns(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 0, "loss": 1.0}\n')
    r = morpho.load_run(tmp_path)
    assert r.events.kind.tolist() == [] and r.snapshots.step.tolist() == []
    assert r.config == {} and r.summary == {}


def test_bad_input_is_a_clear_error(run: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a morpho run directory; expected metrics.jsonl"):
        morpho.load_run(tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    with open(bad / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "st\n')
    n = len(lines(run / "metrics.jsonl")) + 1
    with pytest.raises(ValueError, match=f"line {n} is not valid JSON"):
        morpho.load_run(bad)
    snap = sorted((bad / "snapshots").glob("*.npz"))[-1]
    snap.write_bytes(snap.read_bytes()[:100])
    (bad / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match=re.escape(f"snapshot {str(snap)!r} cannot be read")):
        morpho.load_run(bad)


def test_readme_example_plots_two_runs(run: Path, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("pandas")
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    section = README.read_text(encoding="utf-8").split("## Look at runs", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None, "the section has a python block"
    paths = re.findall(r'"(runs/[^"]+)"', block.group(1))
    assert len(paths) == 2
    for p in paths:
        shutil.copytree(run, tmp_path / p)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(plt, "show", lambda: None)
    exec(compile(block.group(1), "README.md", "exec"), {})  # noqa: S102
    lines_drawn = plt.gca().get_lines()
    assert [line.get_label() for line in lines_drawn] == paths
    evals = [x for x in lines(run / "metrics.jsonl") if x["kind"] == "eval"]
    assert list(lines_drawn[0].get_ydata()) == [x["val_bpc"] for x in evals]
    plt.close("all")

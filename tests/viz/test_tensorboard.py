"""TensorBoard output (``morpho grow --tensorboard``, ``morpho tensorboard``), read back with
TensorBoard's own reader: every numeric field of every ``metrics.jsonl`` record is a scalar
at its step, equal to the float32 cast of the JSON value; the live files equal the converted
ones; events are text at their steps, snapshots images; the per-level energies are the level
means of the snapshots; bench and stream folders give one folder per run; bad input is
refused in one line with nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorboard", reason="needs the tensorboard extra (morpho[tensorboard])")

from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)
from typer.testing import CliRunner  # noqa: E402

import morpho.viz.tensorboard as tb  # noqa: E402
from morpho.cli import app  # noqa: E402
from morpho.rundir import read_jsonl, snapshot_paths  # noqa: E402
from morpho.viz.synthetic import synthetic_run  # noqa: E402

# a tiny growing run (as in tests/engine/test_resume.py): checks every 5 steps, events at once
TINY_TOML = """
[network]
d_cell = 8
n_heads = 1
mlp_ratio = 1
level_sizes = [1, 3, 3, 1]
[train]
steps = 30
batch_size = 4
seq_len = 16
eval_every = 10
log_every = 2
eval_batches = 2
warmup = 5
[growth]
interval = 5
start = 5
cooldown = 5
max_cells = 14
"""
TEXT = "events/text_summary"  # torch's add_text files text under <tag>/text_summary


def invoke(*args: object) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run grown with ``--tensorboard``."""
    root = tmp_path_factory.mktemp("tb")
    (root / "tiny.toml").write_text(TINY_TOML)
    out = root / "run"
    result = invoke(
        "grow", "--task", "lang", "--preset", "small", "--config", root / "tiny.toml",
        "--out", out, "--quiet", "--tensorboard",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert read_jsonl(out / "events.jsonl"), "the tiny run must have growth events"
    return out


@pytest.fixture(scope="module")
def converted(live: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("conv") / "tb"
    result = invoke("tensorboard", live, "--out", out)
    assert result.exit_code == 0, result.output
    return out / live.name


def accumulator(folder: Path) -> EventAccumulator:
    """Every value of every file, none purged: a step written twice or out of order shows."""
    sizes = {"scalars": 0, "images": 0, "tensors": 0}
    acc = EventAccumulator(str(folder), size_guidance=sizes, purge_orphaned_data=False)
    acc.Reload()
    return acc


def scalars(acc: EventAccumulator) -> dict[str, list[tuple[int, float]]]:
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def numeric_fields(record: dict[str, Any]) -> list[float]:
    """Every numeric leaf of a record but kind and step, walked independently of the module."""
    out: list[float] = []
    for key, value in record.items():
        if isinstance(value, dict):
            out += numeric_fields(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
            out.append(float(value))
    return out


def assert_metrics_equal(run: Path, acc: EventAccumulator) -> None:
    """Each numeric field of each metrics record is a scalar at the record's step whose
    value is exactly the float32 cast of the JSON value; nothing else but the energies."""
    got = scalars(acc)
    records = read_jsonl(run / "metrics.jsonl")
    expected: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        for tag, value in tb.record_scalars(r).items():
            expected.setdefault(tag, []).append((r["step"], value))
    assert sum(map(len, expected.values())) == sum(len(numeric_fields(r)) for r in records)
    for tag, points in expected.items():
        assert [s for s, _ in got[tag]] == [s for s, _ in points], tag
        for (_, value), (_, stored) in zip(points, got[tag], strict=True):
            assert np.float32(stored) == np.float32(value), (tag, stored, value)
            assert stored == float(np.float32(value)), (tag, stored, value)
    assert all(t.startswith(("energy/level", "summary/")) for t in set(got) - set(expected))


def test_live_scalars_equal_the_metrics_exactly(live: Path) -> None:
    acc = accumulator(live / "tb")
    assert_metrics_equal(live, acc)
    got = scalars(acc)
    for tag in ("train/loss", "train/bpc", "train/lr", "val/bpc", "val/loss", "tissue/cells"):
        assert tag in got, tag
    evals = [r for r in read_jsonl(live / "metrics.jsonl") if r["kind"] == "eval"]
    assert got["val/bpc"] == [(r["step"], float(np.float32(r["val_bpc"]))) for r in evals]
    trains = [r for r in read_jsonl(live / "metrics.jsonl") if r["kind"] == "train"]
    assert got["tissue/edges"] == [(r["step"], float(r["edges"])) for r in trains]


def test_converted_scalars_equal_the_metrics_and_the_live_files(live: Path, converted) -> None:
    conv, lv = accumulator(converted), accumulator(live / "tb")
    assert_metrics_equal(live, conv)
    assert scalars(conv) == scalars(lv)
    assert _texts(conv) == _texts(lv)
    assert _images(conv) == _images(lv)


def _images(acc: EventAccumulator) -> list[tuple[int, bytes]]:
    return [(i.step, i.encoded_image_string) for i in acc.Images("tissue/graph")]


def _texts(acc: EventAccumulator) -> list[tuple[int, str]]:
    return [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(TEXT)]


def test_events_are_text_at_their_steps_and_snapshots_images(live: Path, converted) -> None:
    acc = accumulator(converted)
    events = read_jsonl(live / "events.jsonl")
    texts = dict(_texts(acc))
    assert sorted(texts) == sorted({e["step"] for e in events})
    for e in events:
        assert f"**{e['kind']}**" in texts[e["step"]] and e["reason"] in texts[e["step"]]
    steps = [int(p.stem.split("_")[1]) for p in snapshot_paths(live)]
    images = acc.Images("tissue/graph")
    assert [i.step for i in images] == steps and len(steps) > 2
    assert all(i.width > 100 and i.height > 100 for i in images)


def test_level_energies_are_the_level_means_of_each_snapshot(live: Path, converted) -> None:
    got = scalars(accumulator(converted))
    checked = 0
    for path in snapshot_paths(live):
        with np.load(path) as z:
            fe, level = z["fe_ema"], z["level"]
            step = json.loads(z["meta_json"].tobytes())["step"]
        if np.ptp(fe) == 0:  # not measured yet: left out
            assert all(s != step for s, _ in got.get("energy/level0/F", [])), step
            continue
        for k in np.unique(level):
            points = dict(got[f"energy/level{k}/F"])
            assert points[step] == float(np.float32(fe[level == k].astype(np.float64).mean()))
            checked += 1
    assert checked > 0


def test_the_summary_is_written_at_the_last_step(live: Path, converted) -> None:
    summary = json.loads((live / "summary.json").read_text())
    assert "dense_flops_per_token" in summary and "flops_per_token" in summary
    for folder in (live / "tb", converted):
        got = scalars(accumulator(folder))
        for key in ("dense_flops_per_token", "flops_per_token", "train_flops", "val_bpc"):
            assert got[f"summary/{key}"] == [(summary["steps"], float(np.float32(summary[key])))]
        assert len([t for t in got if t.startswith("summary/")]) == len(numeric_fields(summary))


def _bench(root: Path) -> Path:
    bench = root / "bench"
    for name in ("morpho", "gru"):
        synthetic_run(bench / name, n_cells=14, seed=len(name))
    rows = [{"name": "morpho"}, {"name": "gru"}, {"name": "ngram"}]  # ngram: no run dir
    (bench / "bench.json").write_text(json.dumps({"rows": rows}))
    return bench


def test_bench_and_stream_folders_give_one_folder_per_run(tmp_path: Path) -> None:
    bench = _bench(tmp_path)
    stream = tmp_path / "stream"
    synthetic_run(stream / "runs" / "morpho-seed0", n_cells=12)
    (stream / "results.json").write_text("{}")
    single = synthetic_run(tmp_path / "solo", n_cells=12)
    out = tmp_path / "tb"
    result = invoke("tensorboard", bench, stream, single, "--out", out)
    assert result.exit_code == 0, result.output
    folders = sorted(str(p.parent.relative_to(out)) for p in out.rglob("events.out.tfevents*"))
    assert folders == ["bench/gru", "bench/morpho", "solo", "stream/runs/morpho-seed0"]
    assert_metrics_equal(bench / "gru", accumulator(out / "bench" / "gru"))
    assert not list(tmp_path.glob(".tb*")), "no staging folder left behind"


def refused(tmp_path: Path, *args: object, fragment: str) -> None:
    before = set(tmp_path.rglob("*"))
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert fragment in lines[0], lines[0]
    assert set(tmp_path.rglob("*")) == before, "nothing written"


def test_bad_input_is_refused_in_one_line_with_nothing_written(tmp_path: Path) -> None:
    run = synthetic_run(tmp_path / "run", n_cells=12)
    out = tmp_path / "tb"
    refused(tmp_path, "tensorboard", tmp_path / "nope", "--out", out, fragment="does not exist")
    refused(tmp_path, "tensorboard", tmp_path, "--out", out, fragment="not a run directory")
    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    with open(bad / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "step": 99, "loss": 1.0\n')  # truncated
    n = len((bad / "metrics.jsonl").read_text().splitlines())
    refused(tmp_path, "tensorboard", run, bad, "--out", out, fragment=f"line {n}")
    nostep = tmp_path / "nostep"
    shutil.copytree(run, nostep)
    (nostep / "metrics.jsonl").write_text('{"kind": "train", "loss": 1.0}\n')
    refused(tmp_path, "tensorboard", nostep, "--out", out, fragment="integer step")
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    refused(tmp_path, "tensorboard", run, "--out", out, fragment="--overwrite")
    assert invoke("tensorboard", run, "--out", out, "--overwrite").exit_code == 0
    assert not (out / "keep.txt").exists() and (out / "run").is_dir()


def _without(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    real = tb.find_spec
    monkeypatch.setattr(tb, "find_spec", lambda name: None if name == package else real(name))


def test_without_tensorboard_both_paths_refuse_naming_the_extra(tmp_path, monkeypatch) -> None:
    _without(monkeypatch, "tensorboard")
    run = synthetic_run(tmp_path / "run", n_cells=12)
    refused(tmp_path, "tensorboard", run, "--out", tmp_path / "tb", fragment="morpho[tensorboard]")
    refused(
        tmp_path, "grow", "--task", "lang", "--steps", "2", "--out", tmp_path / "new",
        "--tensorboard", "--quiet", fragment="morpho[tensorboard]",
    )  # fmt: skip


def test_without_matplotlib_images_are_skipped_with_one_warning(tmp_path, monkeypatch, capsys):
    _without(monkeypatch, "matplotlib")
    run = synthetic_run(tmp_path / "run", n_cells=12)
    tb.convert_runs([run], tmp_path / "tb")
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "matplotlib" in warning[0], warning
    acc = accumulator(tmp_path / "tb" / "run")
    assert acc.Tags()["images"] == []
    assert_metrics_equal(run, acc)


def test_tags_of_the_known_fields() -> None:
    train = {"kind": "train", "step": 3, "loss": 1.0, "cells": 5, "lr": 0.1, "ok": True}
    assert tb.record_scalars(train) == {"train/loss": 1.0, "tissue/cells": 5.0, "train/lr": 0.1}
    ev = {"kind": "eval", "step": 3, "val_bpc": 2.0, "best_val_bpc": 1.5, "note": "x"}
    assert tb.record_scalars(ev) == {"val/bpc": 2.0, "val/best_bpc": 1.5}
    nested = {"kind": "train", "step": 3, "energy": {"level0": {"F": 0.5}}, "cells": None}
    assert tb.record_scalars(nested) == {"energy/level0/F": 0.5}
    clash = {"kind": "eval", "step": 1, "bpc": 1.0, "val_bpc": 2.0}
    assert tb.record_scalars(clash) == {"val/bpc": 1.0, "val/val_bpc": 2.0}


@pytest.mark.slow
def test_a_resumed_run_writes_its_tensorboard_files_again_from_its_logs(tmp_path) -> None:
    from conftest import Crash

    from morpho.config import RunConfig, tomllib
    from morpho.grow import grow, resume

    tiny = tomllib.loads(TINY_TOML)
    cfg = RunConfig.preset("small").merged(tiny).merged({"train": {"checkpoint_every": 10}})
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        grow(cfg, out, callbacks=[tb.LiveTensorBoard(), Crash(17)])
    assert max(s for s, _ in scalars(accumulator(out / "tb"))["train/loss"]) == 16
    resume(out, callbacks=[tb.LiveTensorBoard()])
    acc = accumulator(out / "tb")
    assert_metrics_equal(out, acc)  # the steps logged before the crash are not doubled
    assert sorted(dict(_texts(acc))) == sorted(
        {e["step"] for e in read_jsonl(out / "events.jsonl")}
    )


def test_the_tensorboard_writer_is_registered_for_grow() -> None:
    from morpho.writers import build_writers

    assert isinstance(build_writers(["tensorboard"])[0], tb.LiveTensorBoard)
    with pytest.raises(ValueError, match="unknown run writer 'tb'; expected one of: .*tensorboard"):
        build_writers(["tb"])

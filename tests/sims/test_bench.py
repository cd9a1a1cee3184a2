"""``morpho bench``: every row trains on the same budget and bench.json has the promised shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from morpho.cli import app
from morpho.config import RunConfig
from morpho.sims.baselines import build_stack_peer
from morpho.sims.bench import ROW_KEYS, bench, bench_config, row_names, with_row_lr
from morpho.sims.lang import BENCH_PRESETS
from morpho.viz.bench_plot import bench_curves

TINY = {
    "network": {"d_cell": 8, "level_sizes": [2, 2, 2], "n_heads": 2, "mlp_ratio": 1},
    "train": {
        "steps": 4,
        "batch_size": 2,
        "seq_len": 16,
        "eval_every": 2,
        "eval_batches": 1,
        "log_every": 2,
        "warmup": 1,
    },
}
TINY_TOML = """
[network]
d_cell = 8
level_sizes = [2, 2, 2]
n_heads = 2
mlp_ratio = 1
[train]
steps = 3
batch_size = 2
seq_len = 16
eval_every = 3
eval_batches = 1
log_every = 3
warmup = 1
"""
ALL_ROWS = [
    "morpho",
    "morpho-fixed",
    "morpho-no-mitosis",
    "morpho-no-apoptosis",
    "morpho-no-dendrite",
    "morpho-no-prune",
    "transformer",
    "gru",
    "ngram",
]


def test_row_names_follow_the_enabled_rules() -> None:
    cfg = RunConfig().merged(TINY)
    assert row_names(cfg) == ALL_ROWS
    picked = cfg.merged({"growth": {"rules": ["dendrite", "prune"]}})
    assert row_names(picked) == [
        "morpho",
        "morpho-fixed",
        "morpho-no-dendrite",
        "morpho-no-prune",
        "transformer",
        "gru",
        "ngram",
    ]
    off = cfg.merged({"growth": {"enabled": False}})
    assert row_names(off) == ["morpho", "morpho-fixed", "transformer", "gru", "ngram"]
    assert row_names(off, rows=["gru"]) == ["morpho", "gru", "ngram"]


def test_tiny_bench_writes_every_row_at_the_same_budget(tmp_path: Path) -> None:
    cfg = RunConfig().merged(TINY).merged({"growth": {"rules": ["prune"]}})
    result = bench(cfg, tmp_path / "b")
    saved = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert saved["rows"] == result["rows"]
    rows = {r["name"]: r for r in saved["rows"]}
    assert list(rows) == [
        "morpho",
        "morpho-fixed",
        "morpho-no-prune",
        "transformer",
        "gru",
        "ngram",
    ]
    ngram = rows.pop("ngram")
    assert set(ROW_KEYS) <= set(ngram) and ngram["order"] >= 1
    assert ngram["order"] < ngram["orders_tried"] or ngram["stopped"] != "validation"
    assert ngram["best_val_bpc"] == ngram["final_val_bpc"] and ngram["dense_train_flops"] == 0
    for r in rows.values():
        assert set(ROW_KEYS) <= set(r)
        assert r["steps"] == 4 and r["best_val_bpc"] <= r["final_val_bpc"] + 1e-9
        assert r["train_flops"] == pytest.approx(3 * 4 * 2 * 16 * r["flops_per_token"], rel=0.5)
        assert (tmp_path / "b" / r["name"] / "metrics.jsonl").stat().st_size > 0
    grown = rows["morpho"]
    assert rows["morpho-fixed"]["params"] == grown["params"]
    assert rows["morpho-fixed"]["cells"] == grown["cells"]
    for name in ("transformer", "gru"):
        assert abs(rows[name]["params"] - grown["params"]) <= 0.05 * grown["params"]
        assert rows[name]["gate_mean"] is None and rows[name]["cells"] is None
    assert 0 <= grown["gate_mean"] <= 1
    assert saved["machine"]["cpus"] >= 1 and saved["task"]["corpus"] == "pydoc"


def test_bench_cli_prints_the_table(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    out = tmp_path / "b"
    result = CliRunner().invoke(
        app, ["bench", "--config", str(tmp_path / "tiny.toml"), "--out", str(out), "--seed", "1"]
    )
    assert result.exit_code == 0, result.output
    for name in ALL_ROWS:
        assert name in result.output
    assert [r["name"] for r in json.loads((out / "bench.json").read_text())["rows"]] == ALL_ROWS


def test_bench_refuses_bad_input_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "b"
    result = CliRunner().invoke(app, ["bench", "--corpus", "nope", "--out", str(out)])
    assert result.exit_code == 2
    assert "unknown corpus 'nope'; expected one of: pydoc, stdlib" in result.output
    assert not out.exists()


def test_bench_cli_mechanism_rows(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    out = tmp_path / "m"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--config",
            str(tmp_path / "tiny.toml"),
            "--out",
            str(out),
            "--rows",
            "morpho",
            "--mechanisms",
            "pathnorm,ponder",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "bench.json").read_text())
    rows = {r["name"]: r for r in saved["rows"]}
    assert list(rows) == ["morpho", "ngram", "morpho+pathnorm", "morpho+ponder"]
    assert "path_norm" in rows["morpho+pathnorm"] and "path_norm" not in rows["morpho"]
    assert 1.0 <= rows["morpho+ponder"]["ponder_passes"] <= 3.0
    assert set(saved["mechanisms"]) == {"pathnorm", "ponder"}


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--mechanisms", "telepathy", "unknown mechanism 'telepathy'"),
        ("--rows", "morpho-xl", "unknown bench row 'morpho-xl'"),
    ],
)
def test_bench_refuses_unknown_rows_and_mechanisms(
    tmp_path: Path, flag: str, value: str, message: str
) -> None:
    out = tmp_path / "b"
    result = CliRunner().invoke(app, ["bench", flag, value, "--out", str(out)])
    assert result.exit_code == 2 and message in result.output
    assert not out.exists()


def test_every_row_logs_its_dense_flops_at_every_eval(tmp_path: Path) -> None:
    cfg = RunConfig().merged(TINY).merged({"growth": {"rules": ["prune"]}})
    result = bench(cfg, tmp_path / "b", rows=["morpho", "transformer"], eval_points=4)
    assert result["config"]["train"]["eval_every"] == 1
    for row in result["rows"][:2]:
        lines = (tmp_path / "b" / row["name"] / "metrics.jsonl").read_text().splitlines()
        curve = [r for r in map(json.loads, lines) if r["kind"] == "flops"]
        flops = [r["dense_train_flops"] for r in curve]
        assert len(curve) >= 4 and flops == sorted(flops) and flops[0] > 0
        assert flops[-1] == row["dense_train_flops"] >= row["gated_train_flops"]
        assert all(r["val_bpc"] is not None for r in curve)
    static = result["rows"][1]
    assert static["dense_train_flops"] == 3 * static["flops_per_token"] * 4 * 2 * 16
    grown = result["rows"][0]
    assert grown["flops_by_kind"]["train"] >= 3 * 4 * 2 * 16 * min(
        grown["dense_flops_per_token"], grown["flops_per_token"]
    )


def test_morpho_plot_of_a_bench_draws_bpc_against_flops(tmp_path: Path) -> None:
    cfg = RunConfig().merged(TINY).merged({"growth": {"rules": ["prune"]}})
    bench(cfg, tmp_path / "b", rows=["morpho", "gru"], eval_points=4)
    result = CliRunner().invoke(app, ["plot", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    png = tmp_path / "b" / "plots" / "bpc_vs_flops.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = bench_curves(tmp_path / "b")
    assert set(curves) == {"morpho", "gru"} and all(len(c) >= 4 for c in curves.values())


def test_a_bench_preset_sets_its_budget_and_rates_and_flags_still_win() -> None:
    cfg, lrs = bench_config("cpu", None, {"train": {"seed": None}})
    spec = BENCH_PRESETS["cpu"]
    assert cfg == RunConfig.preset(spec["base"]).merged(spec["config"])
    assert lrs == spec["lr"]
    flagged, _ = bench_config("cpu", None, {"train": {"steps": 7, "seed": 3}})
    assert (flagged.train.steps, flagged.train.seed) == (7, 3)
    assert flagged.train.seq_len == cfg.train.seq_len
    assert bench_config("small", None, {}) == (RunConfig.preset("small"), {})
    with pytest.raises(ValueError, match="unknown preset 'huge'; expected one of: small, .*cpu"):
        bench_config("huge", None, {})


def test_rows_take_their_own_learning_rate_and_morpho_rows_share_one() -> None:
    cfg = RunConfig().merged(TINY)
    lrs = {"morpho": 2e-3, "gru": 1e-2}
    assert with_row_lr(cfg, "morpho-no-prune", lrs).train.lr == 2e-3
    assert with_row_lr(cfg, "morpho+clocks", {**lrs, "morpho+clocks": 5e-4}).train.lr == 5e-4
    assert with_row_lr(cfg, "gru", lrs).train.lr == 1e-2
    assert with_row_lr(cfg, "transformer", lrs) == cfg


def test_bench_trains_each_row_at_its_rate(tmp_path: Path) -> None:
    cfg = RunConfig().merged(TINY).merged({"growth": {"enabled": False}})
    lrs = {"morpho": 2e-3, "gru": 1e-2}
    result = bench(cfg, tmp_path / "b", rows=["morpho", "gru"], lrs=lrs)
    assert [(r["name"], r.get("lr")) for r in result["rows"]] == [
        ("morpho", 2e-3),
        ("gru", 1e-2),
        ("ngram", None),
    ]
    assert result["lrs"] == lrs


def test_the_stacked_peer_doubles_its_depth_and_is_charged_for_each_depth(tmp_path: Path) -> None:
    cfg = RunConfig().merged(TINY).merged({"growth": {"enabled": False}})
    assert "transformer-stack" not in row_names(cfg)  # only when asked for
    result = bench(cfg, tmp_path / "b", rows=["transformer", "transformer-stack"])
    rows = {r["name"]: r for r in result["rows"]}
    stacked, static = rows["transformer-stack"], rows["transformer"]
    assert stacked["params"] == static["params"]
    assert stacked["flops_per_token"] == static["flops_per_token"]
    events = (tmp_path / "b" / "transformer-stack" / "events.jsonl").read_text().splitlines()
    (stack,) = [json.loads(e) for e in events]
    assert stack["kind"] == "stack" and stack["step"] == 1 and stack["n_layer"] == 4
    assert stack["loss_before"] is not None and stack["loss_after"] is not None
    # one step at half depth, three at full, each 3x its forward (the loss read is not charged)
    vocab = len(result["task"]["chars"])
    half = build_stack_peer(vocab, rows["morpho"]["params"]).flops_per_token(16)
    tokens = 2 * 16
    expected = 3 * tokens * (half + 3 * static["flops_per_token"])
    assert stacked["dense_train_flops"] == pytest.approx(expected, rel=1e-12)


def test_sized_peers_take_half_and_twice_morphos_parameters(tmp_path: Path) -> None:
    cfg = RunConfig().merged(TINY).merged({"growth": {"enabled": False}})
    result = bench(cfg, tmp_path / "b", rows=["gru-0.5x", "transformer-2x"], lrs={"gru": 1e-2})
    rows = {r["name"]: r for r in result["rows"]}
    grown = rows["morpho"]["params"]
    assert abs(rows["gru-0.5x"]["params"] - grown / 2) <= 0.05 * grown
    assert abs(rows["transformer-2x"]["params"] - 2 * grown) <= 0.1 * grown
    assert rows["gru-0.5x"]["lr"] == 1e-2  # a sized peer takes its family's rate


def test_the_stdlib_preset_reads_the_standard_library_at_the_cpu_windows() -> None:
    cfg, lrs = bench_config("stdlib", None, {})
    cpu, _ = bench_config("cpu", None, {})
    assert cfg.task_options == {"corpus": "stdlib"} and lrs == BENCH_PRESETS["stdlib"]["lr"]
    # the same eval windows as cpu, so the two presets share their count floor
    assert (cfg.train.seq_len, cfg.train.batch_size, cfg.train.eval_batches) == (
        cpu.train.seq_len,
        cpu.train.batch_size,
        cpu.train.eval_batches,
    )
    assert cfg.train.steps > cpu.train.steps

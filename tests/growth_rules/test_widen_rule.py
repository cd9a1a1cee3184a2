"""The widen rule: it proposes one network-wide widening on a plateau of the mean free energy,
early in a run and in large steps, nothing otherwise; it is off by default, its parameters
are typed and range-checked, and a run that widens logs the event, keeps training and writes
a run that resumes, plots and renders."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from conftest import Crash, K, run_lines, view

from morpho.checkpoint import latest_checkpoint, network_from_payload
from morpho.config import RunConfig
from morpho.grow import grow, resume
from morpho.growth.config import DEFAULT_RULES, GrowthConfig
from morpho.growth_rules.widen import Widen
from morpho.rundir import read_jsonl, snapshot_paths
from morpho.tissue import load_snapshot


def widen_view(fe: list[float], d_cell: int = 19, step: int = 100, total: int = 600):
    """A crafted view whose every cell has the mean free-energy history ``fe`` (K checks)."""
    v = view()
    n = v.tissue.num_nodes
    history = torch.tensor(fe).expand(n, K).clone()
    history[0] += 0.1  # cells differ; the rule reads their mean
    history[1] -= 0.1
    v.cell_history["fe_ema"] = history
    return dataclasses.replace(v, d_cell=d_cell, step=step, total_steps=total)


def test_a_plateau_early_in_the_run_widens_every_cell_in_one_large_step() -> None:
    (event,) = Widen(to=38, patience=2, tolerance=0.02).propose(widen_view([2.0, 1.5, 1.49, 1.48]))
    assert event.kind == "widen" and event.cells == () and event.options == {"d_cell": 38}
    assert event.score > 1 and "19 -> 38" in event.reason


@pytest.mark.parametrize(
    ("fe", "kwargs", "why"),
    [
        ([2.0, 1.8, 1.6, 1.4], {}, "still falling"),
        ([2.0, 1.5, 1.49, 1.48], {"d_cell": 38}, "already at the target"),
        ([2.0, 1.5, 1.49, 1.48], {"step": 200}, "too late: after max_fraction"),
        ([math.nan, math.nan, 1.49, 1.48], {}, "too few checks to judge"),
    ],
)
def test_no_widening_while_falling_at_the_target_late_or_too_young(fe, kwargs, why) -> None:
    assert Widen(to=38, patience=2, max_fraction=0.3).propose(widen_view(fe, **kwargs)) == [], why


def test_steps_are_capped_at_the_target_and_rounded_to_whole_heads() -> None:
    flat = [1.0, 1.0, 1.0, 1.0]
    assert Widen(to=100, factor=2).propose(widen_view(flat))[0].options == {"d_cell": 38}
    assert Widen(to=30, factor=2).propose(widen_view(flat))[0].options == {"d_cell": 30}
    assert Widen(to=57, factor=3, multiple=19).propose(widen_view(flat))[0].options == {
        "d_cell": 57
    }
    assert Widen(to=30, factor=1.5, multiple=19).propose(widen_view(flat)) == []  # 28 -> 19


def test_off_by_default_and_parameters_are_typed_and_range_checked() -> None:
    assert "widen" not in DEFAULT_RULES and "widen" not in GrowthConfig().rules
    cfg = GrowthConfig.from_dict({"rules": ["widen"], "widen": {"to": 38, "max_fraction": 0.25}})
    assert cfg.to_dict()["widen"]["to"] == 38 and cfg.to_dict()["widen"]["max_fraction"] == 0.25
    for table, message in [
        ({"to": 1}, "growth.widen.to must be >= 2"),
        ({"factor": 1.0}, "growth.widen.factor must be > 1"),
        ({"max_fraction": 1.5}, "growth.widen.max_fraction must be in [0, 1]"),
        ({"to": "wide"}, "growth.widen.to"),
        ({"sideways": 1}, "unknown config key growth.widen.sideways"),
    ]:
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            GrowthConfig.from_dict({"rules": ["widen"], "widen": table})


WIDE_RUN = {
    "network": {
        "cell_type": "wide",
        "d_cell": 4,
        "d_stream": 16,
        "n_heads": 1,
        "mlp_ratio": 1,
        "level_sizes": [1, 1, 1],
    },
    "train": {"steps": 40, "batch_size": 4, "seq_len": 16, "eval_every": 20, "eval_batches": 2},
    # tolerance 10: every check is a "plateau", so the first round widens 4 -> 8 -> 12
    "growth": {
        "rules": ["widen"],
        "start": 10,
        "interval": 5,
        "widen": {"to": 12, "factor": 2, "tolerance": 10, "patience": 1, "max_fraction": 0.5},
    },
}


def test_a_run_that_widens_logs_it_and_resumes_plots_and_renders_it(tmp_path) -> None:
    run = tmp_path / "run"
    summary = grow(RunConfig().merged(WIDE_RUN), run)
    events = read_jsonl(run / "events.jsonl")
    assert [(e["kind"], e["old_width"], e["new_width"]) for e in events] == [
        ("widen", 4, 8),
        ("widen", 8, 12),
    ]
    assert all(e["step"] <= 20 and e["rule"] == "widen" and e["cells"] == [] for e in events)
    assert summary["growth_events"] == {"widen": 2}
    _, payload = latest_checkpoint(run / "checkpoints")
    net = network_from_payload(payload)
    assert net.cfg.d_cell == 12 and net.cfg.n_heads == 3
    assert "[growth.widen]" in (run / "config.toml").read_text()
    sizes = [load_snapshot(p)[0].n_params for p in snapshot_paths(run)]  # what render sizes by
    assert bool((sizes[-1] > 2 * sizes[0]).all())  # every cell is drawn bigger once widened
    pytest.importorskip("pyvista")
    from typer.testing import CliRunner

    from morpho.cli import app

    for args in (
        ["plot", str(run), "--out", str(tmp_path / "plots")],
        [
            "render",
            str(run),
            "--out",
            str(tmp_path / "f.png"),
            "--frame",
            "40",
            "--size",
            "320x240",
        ],
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output


def test_a_run_resumed_between_two_widenings_writes_the_same_logs(tmp_path) -> None:
    cfg = RunConfig().merged(WIDE_RUN).merged({"train": {"checkpoint_every": 10}})
    grow(cfg, tmp_path / "ref")
    with pytest.raises(KeyboardInterrupt):  # after the first widening and step 10's checkpoint
        grow(cfg, tmp_path / "run", callbacks=[Crash(13)])
    resume(tmp_path / "run")
    for name in ("metrics.jsonl", "events.jsonl"):
        assert run_lines(tmp_path / "ref", name) == run_lines(tmp_path / "run", name), name

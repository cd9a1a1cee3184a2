"""The optional mechanisms wired into config, trainer, scheduler and bench."""

from __future__ import annotations

import math

import pytest
import torch

from morpho.apply import apply_edit
from morpho.config import RunConfig
from morpho.criticality import path_norm, tissue_lyapunov
from morpho.edits import insert_edit
from morpho.grow import grow
from morpho.growth.config import GrowthConfig
from morpho.growth.scheduler import Scheduler
from morpho.mechanisms import build_terms
from morpho.network import Network, NetworkConfig
from morpho.rundir import read_jsonl
from morpho.sims.bench import MECHANISMS, mechanism_config, row_names
from morpho.terms import StepContext

TINY = {
    "network": {"d_cell": 8, "level_sizes": [2, 3, 3, 2], "n_heads": 2, "mlp_ratio": 1},
    "train": {
        "steps": 40,
        "batch_size": 4,
        "seq_len": 16,
        "eval_every": 20,
        "eval_batches": 2,
        "log_every": 5,
    },
    "growth": {"start": 10, "interval": 10, "mitosis": {"patience": 1}},
}


def _run(tmp_path, name: str, over: dict) -> tuple[dict, list[dict], list[dict]]:
    cfg = RunConfig().merged(TINY).merged(over)
    summary = grow(cfg, tmp_path / name)
    metrics = read_jsonl(tmp_path / name / "metrics.jsonl")
    events = read_jsonl(tmp_path / name / "events.jsonl")
    return summary, metrics, events


def test_monitors_are_logged_and_summarised(tmp_path) -> None:
    summary, metrics, _ = _run(
        tmp_path,
        "m",
        {
            "lyapunov": {"every": 5, "window": 8},
            "path_norm": {"weight": 1e-3},
            "network": {"ponder_max": 2},
        },
    )
    train = [m for m in metrics if m["kind"] == "train"]
    assert all(math.isfinite(m["lyapunov"]) for m in train)
    assert all(m["path_norm"] > 0 for m in train)
    assert all(1.0 <= m["ponder_passes"] <= 2.0 for m in train)
    for key in ("lyapunov", "path_norm", "ponder_passes"):
        assert key in summary


def test_mechanisms_off_log_nothing_new(tmp_path) -> None:
    summary, metrics, _ = _run(tmp_path, "off", {})
    for key in ("lyapunov", "path_norm", "ponder_passes", "repr_entropy"):
        assert key not in summary
        assert all(key not in m for m in metrics)


def test_series_mitosis_grows_levels_and_keeps_training(tmp_path) -> None:
    over = {
        "train": {"steps": 80},
        "growth": {"cooldown": 10, "mitosis": {"mode": "series", "quantile": 0.5}},
    }
    summary, _, events = _run(tmp_path, "s", over)
    inserts = [e for e in events if e["kind"] == "insert"]
    assert inserts, "mitosis in series should have fired with patience 1"
    assert all(e["kind"] != "split" for e in events)
    assert summary["growth_events"]["insert"] == len(inserts)
    assert math.isfinite(summary["val_bpc"])


def test_knife_entropy_term_feeds_the_free_energy(tmp_path) -> None:
    summary, metrics, _ = _run(tmp_path, "k", {"growth": {"entropy_term": "repr_entropy"}})
    assert 0 < summary["repr_entropy"] < 10  # nats per channel
    logged = [m["repr_entropy"] for m in metrics if "repr_entropy" in m]
    assert logged and all(0 < v < 10 for v in logged)  # visible in metrics.jsonl …
    from morpho.tissue import load_snapshot

    last = sorted((tmp_path / "k" / "snapshots").glob("*.npz"))[-1]
    tissue, _ = load_snapshot(last)
    assert tissue.repr_entropy.shape == (tissue.num_nodes,)  # … and in the snapshots
    weights = GrowthConfig.from_dict({"entropy_term": "repr_entropy", "tau": 0.3}).energy_weights()
    assert weights["repr_entropy"] == -0.3 and "entropy" not in weights


def _extra_loss(cfg: RunConfig, net: Network, x: torch.Tensor, gen: torch.Generator):
    """The summed plug-in terms ``cfg`` switches on, at step 0 on batch ``x``."""
    ctx = StepContext(net, net.run(x), (x, x), 0, gen)
    return sum(v for term in build_terms(cfg) if (v := term.loss(ctx)) is not None)


def test_regularizers_add_exactly_their_terms() -> None:
    from morpho.grow import build_task

    cfg = RunConfig().merged(TINY)
    task = build_task(cfg)
    x, _ = task.batch("train", 4, 16, torch.Generator().manual_seed(0))
    on = cfg.merged(
        {
            "path_norm": {"weight": 0.5},
            "lyapunov": {"every": 1, "window": 8, "weight": 2.0, "target": -5.0},
        }
    )
    net = Network(cfg.network.__class__(**{**vars(cfg.network), "vocab_size": task.vocab_size}))
    assert float(_extra_loss(cfg, net, x, torch.Generator())) == 0.0
    reg = _extra_loss(on, net, x, torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)  # the start vectors the term drew
    lam = tissue_lyapunov(net, net.embed[x[:4]], 8, t0=16 - 1 - 8, iters=4, generator=gen)
    expected = 0.5 * path_norm(net) + 2.0 * torch.relu(lam + 5.0) ** 2
    torch.testing.assert_close(reg, expected, rtol=1e-4, atol=1e-5)
    reg.backward()
    assert net.banks["strength"].grad is not None and net.banks["w_inert"].grad is not None


@pytest.mark.parametrize(
    ("section", "key", "value", "match"),
    [
        ("lyapunov", "weight", 0.1, r"lyapunov.every must be > 0 when lyapunov.weight"),
        ("lyapunov", "every", -1, "lyapunov.every must be >= 0"),
        ("path_norm", "weight", -1.0, "path_norm.weight must be >= 0"),
        ("ponder", "weight", -1.0, "ponder.weight must be >= 0"),
        ("lyapunov", "every", "x", "lyapunov.every: expected int"),
        ("network", "ponder_max", 0, "ponder_max"),
        ("network", "clock_ratio", 0, "clock_ratio"),
    ],
)
def test_bad_mechanism_settings_are_named(
    section: str, key: str, value: object, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        RunConfig().merged({section: {key: value}})


def test_bad_window_entropy_term_and_mode_are_named() -> None:
    with pytest.raises(ValueError, match=r"lyapunov.window must be in \[1, train.seq_len=64\)"):
        RunConfig().merged({"lyapunov": {"every": 5, "window": 64}, "train": {"seq_len": 64}})
    with pytest.raises(ValueError, match="entropy_term"):
        GrowthConfig.from_dict({"entropy_term": "vibes"})
    with pytest.raises(ValueError, match="mitosis mode"):
        GrowthConfig.from_dict({"mitosis": {"mode": "diagonal"}})


def test_the_former_train_keys_of_the_mechanisms_still_work() -> None:
    old = {
        "train": {"steps": 9, "lyapunov_every": 5, "lyapunov_weight": 0.2},
        "network": {"ponder_max": 2},
    }
    cfg = RunConfig().merged(old).merged({"train": {"path_norm_weight": 0.1}})
    assert (cfg.lyapunov.every, cfg.lyapunov.weight, cfg.path_norm.weight) == (5, 0.2, 0.1)
    assert cfg.train.steps == 9 and "lyapunov_every" not in cfg.to_dict()["train"]
    assert [type(t).__name__ for t in build_terms(cfg)] == [
        "Ponder",
        "PathNorm",
        "Lyapunov",
        "ReprEntropy",
    ]


def test_bench_mechanism_rows() -> None:
    cfg = RunConfig.preset("small")
    names = row_names(cfg, rows=["morpho"], mechanisms=list(MECHANISMS))
    assert names == ["morpho", "ngram", *[f"morpho+{m}" for m in MECHANISMS]]  # lang: n-gram too
    for m in MECHANISMS:
        assert mechanism_config(cfg, m) != cfg  # each switches something on
    with pytest.raises(ValueError, match="unknown mechanism"):
        row_names(cfg, mechanisms=["telepathy"])
    with pytest.raises(ValueError, match="unknown bench row"):
        row_names(cfg, rows=["morpho-xl"])


def test_lyapunov_monitor_leaves_no_trace(tmp_path) -> None:
    """With no regulariser weight, measuring Λ changes nothing in the run (own RNG stream)."""
    over = {"train": {"steps": 80}, "growth": {"cooldown": 10, "mitosis": {"quantile": 0.5}}}
    _, plain, ev_plain = _run(tmp_path, "plain", over)
    watched = {"train": {"steps": 80}, "lyapunov": {"every": 5, "window": 8}}
    _, seen, ev_seen = _run(tmp_path, "seen", {**over, **watched})
    assert any(e["kind"] == "split" for e in ev_plain)  # the noise of a split is exercised
    strip = ("lyapunov", "tokens_per_s", "time", "wall")
    for a, b in zip(plain, seen, strict=True):
        assert {k: v for k, v in a.items() if k not in strip} == {
            k: v for k, v in b.items() if k not in strip
        }
    assert [e["cells"] for e in ev_plain] == [e["cells"] for e in ev_seen]


def test_level_floors_follow_an_insert() -> None:
    """keep_levels: after a level is inserted, each old level keeps its own floor."""
    net = Network(NetworkConfig(vocab_size=16))  # levels 2-4-4-2

    class Stub:
        pass

    trainer = Stub()
    trainer.net = net  # type: ignore[attr-defined]
    sched = Scheduler(GrowthConfig())
    sched.level_floor = torch.bincount(net.tissue.level)
    edit = insert_edit(net, net.cell_ids()[3])  # a level-1 cell: new level 2
    apply_edit(net, edit)
    sched.on_edit(trainer, edit)  # type: ignore[arg-type]
    assert sched.level_floor.tolist() == [2, 4, 0, 4, 2]
    assert torch.equal(
        torch.bincount(net.tissue.level) >= sched.level_floor, torch.ones(5, dtype=torch.bool)
    )


def test_docs_mechanisms_config_is_valid() -> None:
    from pathlib import Path

    from morpho.files import load_toml

    path = Path(__file__).resolve().parents[2] / "docs" / "mechanisms.toml"
    cfg = RunConfig.preset("small").merged(load_toml(path))
    growth = cfg.growth
    assert cfg.network.clock_ratio == 2 and cfg.network.ponder_max == 2
    assert growth.entropy_term == "repr_entropy" and growth.params["dendrite"]["wormholes"]


def test_sync_free_run_grows_with_the_fused_optimizer(tmp_path) -> None:
    """Edits carry the fused AdamW's state (tensor step counters) like the foreach one's."""
    over = {
        "train": {"steps": 80, "sync_free": True},
        "growth": {"cooldown": 10, "mitosis": {"quantile": 0.5}},
    }
    summary, _, events = _run(tmp_path, "sf", over)
    assert {"split", "connect"} <= {e["kind"] for e in events}
    assert math.isfinite(summary["val_bpc"])

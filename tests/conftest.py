"""Shared helpers of the engine tests: tiny networks, optimizers, training steps, invariants.

Everything runs on CPU in milliseconds: cells have 8 channels and sequences 8 tokens.
Helpers are plain functions (``from conftest import tiny_net``) so a test reads top-down.
``GatedCell`` is a second, deliberately simple cell type (registered as ``"gated"``) that
the edit laws run on beside the thermodynamic cell (``CELL_TYPES_UNDER_TEST``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from morpho.apply import apply_edit
from morpho.cells import Bank, CellType, LevelOutput, bank_matmul, register_cell_type, rms_norm
from morpho.files import load_toml
from morpho.growth.rule import GrowthView
from morpho.network import Network, NetworkConfig
from morpho.rundir import read_jsonl
from morpho.tissue import INPUT, OUTPUT, check_tissue, seed_tissue
from morpho.trainer import Callback, StepResult, TrainConfig

# tiny tensors: threads only add contention (10x slower steps on a loaded 2-core machine)
torch.set_num_threads(1)

VOCAB = 16
TINY = NetworkConfig(
    vocab_size=VOCAB, d_cell=8, level_sizes=(2, 3, 3, 2), n_heads=2, mlp_ratio=1, seed=0
)


# docs/mechanisms.toml (every optional mechanism on), fitted to 16-token test runs and with a
# Lyapunov target the tissue exceeds, so the regulariser is active
DOCS = Path(__file__).resolve().parents[1] / "docs"
ALL_ON: dict[str, Any] = load_toml(DOCS / "mechanisms.toml")
ALL_ON["lyapunov"].update(every=3, window=6, target=-0.5)


@dataclass(frozen=True)
class GatedConfig:
    """Settings of :class:`GatedCell`."""

    mlp_ratio: int = 1  # hidden width in multiples of d_cell (read from [network])
    gate_bias: float = 0.0  # initial gate bias ([network.cell_options])


class GatedCell(CellType):
    """A gated MLP with a residual: ``y = skip + g ⊙ W_out gelu(W_in x̂)``.

    ``x̂ = norm ⊙ rms_norm(x)``; ``g_t = σ(⟨w_gate, x̂_t⟩ + b + demand)`` per token; ``skip``
    is ``x̂``, or the raw input ``x`` for cells born in series. ``W_out`` is declared
    ``series="zero"``: a cell born in series is the identity at birth only because of it.
    No state, so clocks change nothing; no local loss; "surprise" is the error of
    predicting each token's ``x̂`` by the previous one's.
    """

    Config = GatedConfig

    def banks(self, d: int) -> dict[str, Bank]:
        m, bias = self.cfg.mlp_ratio * d, self.cfg.gate_bias
        return {
            "norm": Bank((d,), lambda n, gen: torch.ones(n, d)),
            "w_gate": Bank((d,), lambda n, gen: torch.randn(n, d, generator=gen) / d**0.5),
            "gate_bias": Bank((), lambda n, gen: torch.full((n,), bias)),
            "w_in": Bank((d, m), lambda n, gen: torch.randn(n, d, m, generator=gen) / d**0.5),
            "w_out": Bank(
                (m, d),
                lambda n, gen: torch.randn(n, m, d, generator=gen) * (0.5 / math.sqrt(m)),
                series="zero",
            ),
        }

    def forward_level(self, banks, x, demand, clock=1, raw_skip=None) -> LevelOutput:
        n = x.shape[0]
        xn = rms_norm(x) * banks["norm"][:, None, None, :]  # (n, B, T, d)
        logit = bank_matmul(xn, banks["w_gate"][..., None])[..., 0]  # (n, B, T)
        logit = logit + banks["gate_bias"][:, None, None]
        g = torch.sigmoid(logit if demand is None else logit + demand)
        skip = xn if raw_skip is None else torch.where(raw_skip.view(n, 1, 1, 1), x, xn)
        z = torch.nn.functional.gelu(bank_matmul(xn, banks["w_in"]))
        y = skip + g[..., None] * bank_matmul(z, banks["w_out"])
        with torch.no_grad():
            surprise = (xn[:, :, 1:] - xn[:, :, :-1]).pow(2).mean(dim=(1, 2, 3))
        gate_mean = g.detach().mean(dim=(1, 2))
        return LevelOutput(
            y=y,
            aux_loss=x.new_zeros(()),  # no local loss
            gate=g,
            surprise=surprise,
            gate_mean=gate_mean,
        )

    def flops_per_token(self, d: int, seq_len: int, clock: int = 1) -> tuple[float, float]:
        m = self.cfg.mlp_ratio * d
        return 2 * d + 2 * 2 * d * m, 0.0


class FreshGatedCell(GatedCell):
    """The gated cell whose newborn in series draws its input side fresh (``init``)."""

    def banks(self, d: int) -> dict[str, Bank]:
        banks = super().banks(d)
        for name in ("w_gate", "w_in"):
            banks[name] = Bank(banks[name].shape, banks[name].init, series="fresh")
        return banks


register_cell_type("gated", GatedCell)
register_cell_type("gated-fresh", FreshGatedCell)
CELL_TYPES_UNDER_TEST = ("thermo", "gated", "wide")
# the wide-stream cell under test reads and writes a stream wider than its core
WIDE_STREAM = 12


def tiny_run(steps: int, **train: object) -> dict[str, Any]:
    """The ``[network] [train] [growth]`` tables of a run small enough for a test: a
    1-3-3-1 tissue of width 8, batches of 4 × 16, an evaluation every 10 steps and a
    growth check every 5; ``train`` overrides keys of ``[train]``."""
    return {
        "network": {"d_cell": 8, "n_heads": 1, "mlp_ratio": 1, "level_sizes": [1, 3, 3, 1]},
        "train": {
            "steps": steps,
            "batch_size": 4,
            "seq_len": 16,
            "eval_every": 10,
            "log_every": 2,
            "eval_batches": 2,
            "warmup": 5,
            **train,
        },
        "growth": {"interval": 5, "start": 5, "cooldown": 5, "max_cells": 14},
    }


def tiny_net(**overrides: object) -> Network:
    """A 10-cell network (levels 2-3-3-2, 8 channels); ``overrides`` go to NetworkConfig
    (``cell_type="wide"`` gets a ``WIDE_STREAM``-wide stream unless ``d_stream`` is given)."""
    if overrides.get("cell_type") == "wide":
        overrides = {"d_stream": WIDE_STREAM, **overrides}
    return Network(NetworkConfig(**{**TINY.__dict__, **overrides}))


def tokens(seed: int, batch: int = 2, seq_len: int = 8) -> Tensor:
    """A (B, T) batch of random token ids, the same for the same seed."""
    return torch.randint(0, VOCAB, (batch, seq_len), generator=torch.Generator().manual_seed(seed))


def param_groups(net: torch.nn.Module) -> list[dict]:
    """Two param groups like ``morpho.trainer.build_optimizer``: matrices (decayed, lower lr)
    and vectors/strengths. Different hyperparameters per group expose any group mix-up."""
    decay, no_decay = [], []
    for name, p in sorted(net.named_parameters()):
        per_row_matrix = p.dim() >= 3 or (p.dim() == 2 and not name.startswith("banks."))
        (decay if per_row_matrix else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": 0.01, "lr": 2e-3},
        {"params": no_decay, "weight_decay": 0.0},
    ]


OPTIMIZERS: dict[str, Callable[[list[dict]], torch.optim.Optimizer]] = {
    "sgd-momentum": lambda g: torch.optim.SGD(g, lr=1e-2, momentum=0.9, nesterov=True),
    "adam": lambda g: torch.optim.Adam(g, lr=3e-3),
    "adam-amsgrad": lambda g: torch.optim.Adam(g, lr=3e-3, amsgrad=True),
    "adamw": lambda g: torch.optim.AdamW(g, lr=3e-3, betas=(0.9, 0.99)),
    "rmsprop": lambda g: torch.optim.RMSprop(g, lr=1e-3),
    "rmsprop-centered-momentum": lambda g: torch.optim.RMSprop(
        g, lr=1e-3, momentum=0.9, centered=True
    ),
    "adagrad": lambda g: torch.optim.Adagrad(g, lr=1e-2, initial_accumulator_value=0.1),
}


def make_optimizer(name: str, net: torch.nn.Module) -> torch.optim.Optimizer:
    return OPTIMIZERS[name](param_groups(net))


def loss_of(net: Network, x: Tensor) -> Tensor:
    """Next-token cross-entropy (targets: the batch shifted by one) plus the cells' aux loss."""
    out = net.run(x[:, :-1])
    ce = F.cross_entropy(out.logits.flatten(0, 1), x[:, 1:].flatten())
    return ce + 0.1 * out.aux_loss


def train(net: Network, opt: torch.optim.Optimizer, n_steps: int, seed: int = 0) -> list[float]:
    """``n_steps`` optimizer steps on batches ``tokens(seed + i)``; returns the losses."""
    losses = []
    for i in range(n_steps):
        loss = loss_of(net, tokens(seed + i, seq_len=9))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def reaches_output(t, dead_cells: Collection[int] = (), dead_edges: Collection[int] = ()) -> bool:
    """Independent oracle: does some input row reach some output row (plain BFS over rows)?"""
    n = t.num_nodes
    children: dict[int, list[int]] = {i: [] for i in range(n)}
    for j, (a, b) in enumerate(t.edge_index.T.tolist()):
        if j not in dead_edges and a not in dead_cells and b not in dead_cells:
            children[a].append(b)
    frontier = [i for i in range(n) if int(t.role[i]) == INPUT and i not in dead_cells]
    seen = set(frontier)
    while frontier:
        frontier = [c for i in frontier for c in children[i] if c not in seen]
        seen.update(frontier)
    return any(int(t.role[i]) == OUTPUT for i in seen)


def assert_invariants(net: Network, opt: torch.optim.Optimizer | None = None) -> None:
    """DESIGN §2 invariant 4, checked from the outside (plus ``check_tissue``)."""
    t = net.tissue
    check_tissue(t)
    n, e = t.num_nodes, t.edge_index.shape[1]
    assert t.cell_id.unique().numel() == n and t.edge_id.unique().numel() == e
    if e:
        assert 0 <= int(t.edge_index.min()) and int(t.edge_index.max()) < n, "edge at a dead cell"
    for name, bank in net.banks.items():
        assert bank.shape[0] == (e if name == "strength" else n), f"bank {name} has wrong rows"
    assert reaches_output(t), "no path from an input to an output"
    if opt is None:
        return
    in_groups = [p for g in opt.param_groups for p in g["params"]]
    assert len(in_groups) == len({id(p) for p in in_groups}), "a parameter is in two groups"
    assert {id(p) for p in in_groups} == {id(p) for p in net.parameters()}
    assert all(any(p is q for q in in_groups) for p in opt.state), "state of a stale parameter"
    for p in net.parameters():
        for key, value in opt.state.get(p, {}).items():
            if torch.is_tensor(value) and value.dim():
                assert value.shape == p.shape, f"state {key} of shape {value.shape} vs {p.shape}"


def cell_of(net: Network, role: int, k: int = 0) -> int:
    """Stable id of the ``k``-th live cell with ``role``."""
    return int(net.tissue.cell_id[net.tissue.role == role][k])


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test starts from the same global RNG state (split noise uses it)."""
    torch.manual_seed(0)


@pytest.fixture
def net() -> Network:
    return tiny_net()


def step_result(net: Network, x: Tensor, capture: bool = False) -> StepResult:
    """What a training step on batch ``x`` hands its callbacks (without a backward)."""
    return StepResult(torch.zeros(()), net.run(x, capture=capture), (x, x))


def probed_step(net: Network, seed: int = 4) -> StepResult:
    """A step on a 4 × 10 token batch whose ``batch`` is its (inputs, next-token targets),
    as the scheduler's probes (splitting, knockout) read it."""
    x = tokens(seed, batch=4, seq_len=10)
    res = step_result(net, x)
    return StepResult(res.ce, res.output, (x[:, :-1], x[:, 1:]))


class Host:
    """The part of a Trainer the scheduler uses, without data or a loop."""

    def __init__(self, net, callbacks=()):
        self.net, self.run, self.callbacks = net, None, list(callbacks)
        self.cfg = TrainConfig(steps=10**6)
        self.optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def apply_edit(self, edit, policy=None):
        apply_edit(self.net, edit, self.optimizer, policy=policy)
        for cb in self.callbacks:
            cb.on_edit(self, edit)
        return edit


# the fields of every line of a run's events.jsonl (growth events of grow and stream runs)
GROWTH_EVENT_KEYS = frozenset(
    {
        "step",
        "kind",
        "rule",
        "cells",
        "new_cells",
        "dead_cells",
        "new_edges",
        "dead_edges",
        "reason",
        "score",
        "stats",
        "free_energy",
        "snapshot",
        "optimizer_state",
    }
)


K = 4  # checks of history in the crafted views


def view(tissue=None, fe=None, gate=None, strength_hist=None, grad=None, strength=None):
    """A GrowthView on a (2, 3, 3, 2) seed tissue with constant, unremarkable statistics."""
    t = tissue if tissue is not None else seed_tissue((2, 3, 3, 2))
    n, e = t.num_nodes, t.edge_index.shape[1]
    fe = fe if fe is not None else torch.full((n, K), 0.5)
    gate = gate if gate is not None else torch.full((n, K), 0.4)
    s_hist = strength_hist if strength_hist is not None else torch.full((e, K), 0.3)
    return GrowthView(
        step=100,
        tissue=t,
        strength=strength if strength is not None else s_hist[:, -1].clone(),
        cell_history={"fe_ema": fe, "gate_ema": gate, "surprise_ema": fe.clone()},
        edge_history=s_hist,
        edge_gradient=grad,
    )


WALL_CLOCK = {"tokens_per_s"}  # logged figures that measure time, not the computation


def run_lines(run: Path, name: str) -> list[dict]:
    """A run's ``metrics.jsonl`` / ``events.jsonl`` records without the wall-clock fields."""
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in read_jsonl(run / name)]


class Crash(Callback):
    """Interrupts training after step ``at``, as a crash would."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, trainer, step, result) -> None:
        if step == self.at:
            raise KeyboardInterrupt

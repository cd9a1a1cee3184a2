"""Laws of the criticality monitors: Lyapunov exponents of linear maps equal log ρ(A)
(Benettin, Gelfand), the differentiable exponent has the right gradient, the tissue monitor
leaves no trace, and the path norm matches hand counts, brute-force path enumeration and
the function-preserving edits."""

from __future__ import annotations

import math

import networkx as nx
import pytest
import torch
from conftest import cell_of, tiny_net
from torch import Tensor

from morpho.apply import connect, split
from morpho.criticality import (
    benettin_lyapunov,
    graph_path_norm,
    lyapunov_probe,
    path_norm,
    sequence_lyapunov,
    tissue_lyapunov,
)
from morpho.network import Network, NetworkConfig
from morpho.tissue import HIDDEN, INPUT, OUTPUT, seed_tissue

F64 = torch.float64
RHO = 0.9  # spectral radius of the test matrices
NON_NORMAL = torch.tensor([[RHO, 3.0], [0.0, 0.5]], dtype=F64)  # ‖A^n‖ ≫ ρ^n for small n


def symmetric(d: int = 4, seed: int = 0) -> Tensor:
    """A symmetric (normal) matrix with eigenvalues 0.9, -0.5, 0.3, 0.1 in a random basis."""
    q, _ = torch.linalg.qr(torch.randn(d, d, dtype=F64, generator=gen(seed)))
    return q @ torch.diag(torch.tensor([RHO, -0.5, 0.3, 0.1], dtype=F64)[:d]) @ q.T


def recurrence(a: Tensor):  # type: ignore[no-untyped-def]
    """The causal sequence map ``y_t = A y_{t-1} + x_t``, (B, T, d) -> (B, T, d)."""

    def fn(x: Tensor) -> Tensor:
        y, ys = torch.zeros_like(x[:, 0]), []
        for t in range(x.shape[1]):
            y = y @ a.T + x[:, t]
            ys.append(y)
        return torch.stack(ys, 1)

    return fn


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ Benettin
@pytest.mark.parametrize("shape", [(4,), (4, 3)])
def test_benettin_linear_symmetric_is_log_spectral_radius(shape: tuple[int, ...]) -> None:
    a = symmetric()
    h0 = torch.randn(shape, dtype=F64, generator=gen(1))
    lam = benettin_lyapunov(lambda h: a @ h, h0, steps=60, warmup=40, generator=gen())
    assert lam == pytest.approx(math.log(RHO), abs=1e-6)


def test_benettin_linear_non_normal_converges_to_log_spectral_radius() -> None:
    # no warmup: the transient growth of ‖A^n v‖ (up to ~5x here) decays like log(C)/n
    h0 = torch.randn(2, dtype=F64, generator=gen(1))
    short = benettin_lyapunov(lambda h: NON_NORMAL @ h, h0, steps=5, generator=gen())
    long = benettin_lyapunov(lambda h: NON_NORMAL @ h, h0, steps=400, generator=gen())
    assert abs(long - math.log(RHO)) < 1e-2 < abs(short - math.log(RHO))


def test_benettin_logistic_map_is_log_two() -> None:
    """The fully chaotic logistic map h ← 4h(1-h) has exponent ln 2 (Ulam–von Neumann)."""
    h0 = torch.tensor([0.3], dtype=F64)
    lam = benettin_lyapunov(lambda h: 4 * h * (1 - h), h0, steps=1500, warmup=20)
    assert lam == pytest.approx(math.log(2), abs=0.02)


def test_benettin_rejects_bad_steps() -> None:
    with pytest.raises(ValueError, match="steps >= 1"):
        benettin_lyapunov(lambda h: h, torch.ones(2), steps=0)


# ------------------------------------------------------- sequence Lyapunov
@pytest.mark.parametrize(("window", "t0"), [(1, 0), (3, 2), (10, 1)])
def test_sequence_lyapunov_normal_recurrence_is_log_rho_for_any_window(
    window: int, t0: int
) -> None:
    x = torch.randn(3, 12, 4, dtype=F64, generator=gen(1))
    lam = sequence_lyapunov(recurrence(symmetric()), x, window, t0=t0, generator=gen())
    assert float(lam) == pytest.approx(math.log(RHO), abs=1e-4)
    assert not lam.requires_grad


def test_sequence_lyapunov_non_normal_tends_to_log_rho_from_above() -> None:
    """Gelfand: ‖A^τ‖^(1/τ) → ρ(A) from above; σ_max(A^τ) >= ρ^τ for every τ."""
    x = torch.randn(2, 121, 2, dtype=F64, generator=gen(1))
    fn = recurrence(NON_NORMAL)
    gaps = [
        float(sequence_lyapunov(fn, x, w, generator=gen())) - math.log(RHO) for w in (1, 10, 120)
    ]
    assert gaps[0] > gaps[1] > gaps[2] > 0
    assert gaps[2] < 0.05
    exact = torch.linalg.matrix_norm(torch.linalg.matrix_power(NON_NORMAL, 10), ord=2)
    assert gaps[1] == pytest.approx(float(exact.log()) / 10 - math.log(RHO), abs=1e-6)


def test_sequence_lyapunov_gradient_of_a_scaled_map_is_one_over_scale() -> None:
    """For A = s·A0 (A0 normal), Λ = log(s ρ0), so dΛ/ds = 1/s."""
    s = torch.tensor(0.8, dtype=F64, requires_grad=True)
    a0 = symmetric()
    x = torch.randn(2, 8, 4, dtype=F64, generator=gen(1))
    fn = lambda x: recurrence(s * a0)(x)  # noqa: E731
    lam = sequence_lyapunov(fn, x, 5, differentiable=True, generator=gen())
    (grad,) = torch.autograd.grad(lam, s)
    assert float(lam.detach()) == pytest.approx(math.log(0.8 * RHO), abs=1e-6)
    assert float(grad) == pytest.approx(1 / 0.8, abs=1e-6)


@pytest.mark.parametrize(
    ("shape", "window", "t0", "message"),
    [
        ((2, 8, 4), 0, 0, "window must be >= 1; got 0"),
        ((2, 8, 4), 4, 4, r"t0 \+ window < T=8; got t0=4, window=4"),
        ((2, 8, 4), 2, -1, "need 0 <= t0"),
        ((8, 4), 2, 0, r"inputs must be \(B, T, d\); got shape \(8, 4\)"),
    ],
)
def test_sequence_lyapunov_rejects_bad_windows(
    shape: tuple[int, ...], window: int, t0: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        sequence_lyapunov(lambda x: x, torch.zeros(shape), window, t0=t0)


def test_sequence_lyapunov_rejects_zero_iters() -> None:
    with pytest.raises(ValueError, match="iters must be >= 1; got 0"):
        sequence_lyapunov(lambda x: x, torch.zeros(1, 4, 2), 1, iters=0)


# --------------------------------------------------------- tissue Lyapunov
def test_tissue_lyapunov_leaves_no_trace() -> None:
    net = tiny_net()
    net.cell.gate_skip_backward = 0.3
    emb = torch.randn(2, 8, 8, generator=gen(1))
    before = dict(vars(net))
    probe = lyapunov_probe(net, emb, 4, t0=1, generator=gen())
    lam = probe.value
    assert vars(net).keys() == before.keys(), "the probe left attributes on the network"
    assert net.cell.gate_skip_backward == 0.3  # the cut backward is back on
    assert probe.output.state.shape == (2, 6, 8)  # its own forward, on the causal window
    assert all(p.grad is None for p in net.parameters())
    assert not lam.requires_grad and math.isfinite(float(lam))
    net.cell.gate_skip_backward = 0.0
    again = sequence_lyapunov(net.forward_tissue, emb, 4, t0=1, generator=gen())
    assert float(lam) == float(again)


def test_tissue_lyapunov_gradient_matches_finite_difference() -> None:
    """dΛ/dα along a random parameter direction δ, against a central difference of Λ.

    The gate reads the cell's surprise through ``detach`` (cells.py), so autograd — like
    any AD Jacobian of the tissue — leaves out that path; with the gate slope at 0 the
    surprise has no effect and the two must agree."""
    net = tiny_net().double()
    with torch.no_grad():
        net.banks["gate"][:, 0] = 0.0
    emb = torch.randn(2, 8, 8, dtype=F64, generator=gen(1))
    lam = tissue_lyapunov(net, emb, 5, iters=30, differentiable=True, generator=gen())
    params = list(net.banks.values())
    grads = torch.autograd.grad(lam, params, allow_unused=True, materialize_grads=True)
    deltas = [torch.randn(p.shape, dtype=F64, generator=gen(2)) * 1e-3 for p in params]
    directional = sum(float((g * d).sum()) for g, d in zip(grads, deltas, strict=True))

    def lam_at(sign: float) -> float:
        with torch.no_grad():
            for p, d in zip(params, deltas, strict=True):
                p.add_(sign * d)
        value = float(tissue_lyapunov(net, emb, 5, iters=30, generator=gen()))
        with torch.no_grad():
            for p, d in zip(params, deltas, strict=True):
                p.sub_(sign * d)
        return value

    assert abs(directional) > 1e-6
    assert directional == pytest.approx((lam_at(1) - lam_at(-1)) / 2, rel=3e-4)


# --------------------------------------------------------------- path norm
def hand_graph() -> dict[str, Tensor]:
    """Inputs 0, 1 (level 0) → hidden 2 (level 1) → outputs 3, 4 (level 2), skip edge 0 → 3."""
    return {
        "edge_index": torch.tensor([[0, 1, 2, 0, 2], [2, 2, 3, 3, 4]]),
        "strength": torch.tensor([2.0, -1.0, 0.5, 3.0, -4.0], requires_grad=True),
        "level": torch.tensor([0, 0, 1, 2, 2]),
        "is_input": torch.tensor([True, True, False, False, False]),
        "sink_weight": torch.tensor([0.0, 0.0, 0.0, 1.0, -0.5]),
    }


def test_graph_path_norm_hand_count_and_gradient() -> None:
    g = hand_graph()
    p = graph_path_norm(**g)
    # 0→2→3: 2·0.5·1 = 1     1→2→3: 1·0.5·1 = 0.5     0→3: 3·1 = 3
    # 0→2→4: 2·4·0.5 = 4     1→2→4: 1·4·0.5 = 2                         total 10.5
    assert float(p) == pytest.approx(10.5)
    p.backward()
    # ∂/∂s_e = sign(s_e) · Σ over paths through e of the product of the other factors
    expected = [0.5 + 2.0, -(0.5 + 2.0), 3.0 * 1.0, 1.0, -(3.0 * 0.5)]
    assert g["strength"].grad.tolist() == pytest.approx(expected)


def brute_force_path_norm(net: Network) -> float:
    t = net.tissue
    s = net.banks["strength"].detach().abs().tolist()
    r = net.banks["readout"].detach().abs().tolist()
    edges = {(a, b): s[j] for j, (a, b) in enumerate(t.edge_index.T.tolist())}
    graph = nx.DiGraph(list(edges))
    graph.add_nodes_from(range(t.num_nodes))  # an input cell may feed nothing
    ins = (t.role == INPUT).nonzero().flatten().tolist()
    outs = (t.role == OUTPUT).nonzero().flatten().tolist()
    return sum(
        math.prod(edges[e] for e in nx.utils.pairwise(path)) * r[o]
        for i in ins
        for o in outs
        for path in nx.all_simple_paths(graph, i, o)
    )


def random_net(seed: int) -> Network:
    cfg = NetworkConfig(vocab_size=16, d_cell=8, level_sizes=(3, 4, 5, 2), mlp_ratio=1)
    net = Network(cfg, tissue=seed_tissue(cfg.level_sizes, seed=seed, fan_in=2))
    with torch.no_grad():
        net.banks["strength"].normal_(generator=gen(seed))
        net.banks["readout"].mul_(torch.randn(net.tissue.num_nodes, generator=gen(seed + 1)))
    return net


@pytest.mark.parametrize("seed", [0, 1])
def test_path_norm_matches_path_enumeration(seed: int) -> None:
    net = random_net(seed)  # fan-in 2 of 3, 4, 5 cells: some paths are missing
    assert float(path_norm(net)) == pytest.approx(brute_force_path_norm(net), rel=1e-5)


def test_path_norm_of_a_dense_seed_is_one() -> None:
    """Seed strengths are 1/fan-in and readouts 1/n_out: every cell carries weight 1."""
    assert float(path_norm(tiny_net())) == pytest.approx(1.0)


def test_path_norm_gradient_reaches_strength_and_readout() -> None:
    net = random_net(0)
    path_norm(net).backward()
    s, grad = net.banks["strength"], net.banks["strength"].grad
    assert grad is not None and bool((grad != 0).any())
    assert bool((grad * s >= 0).all())  # |s| grows with s where s > 0, shrinks where s < 0
    readout_grad = net.banks["readout"].grad
    is_output = net.tissue.role == OUTPUT
    assert bool((readout_grad[~is_output] == 0).all())
    assert bool((readout_grad[is_output] != 0).all())


@pytest.mark.parametrize("role", [INPUT, HIDDEN, OUTPUT])
def test_path_norm_unchanged_by_split(role: int) -> None:
    net = random_net(0)
    before = float(path_norm(net))
    split(net, cell_of(net, role), noise=0.0)
    assert float(path_norm(net)) == pytest.approx(before, rel=1e-6)


def test_path_norm_unchanged_by_connect_until_the_edge_grows() -> None:
    net = random_net(0)
    before = float(path_norm(net))
    source, target = cell_of(net, INPUT), cell_of(net, OUTPUT)  # a new skip edge
    readout = float(net.banks["readout"][net.row_of(target)].abs())
    connect(net, source, target)
    assert float(path_norm(net)) == pytest.approx(before, rel=1e-6)
    with torch.no_grad():
        net.banks["strength"][-1] = 2.0  # one new path, input → output: 2 · |readout|
    assert float(path_norm(net)) == pytest.approx(before + 2 * readout, rel=1e-6)


def test_graph_path_norm_rejects_edges_going_down() -> None:
    g = hand_graph()
    g["edge_index"] = g["edge_index"].flip(0)
    with pytest.raises(ValueError, match="lower to a higher level"):
        graph_path_norm(**g)

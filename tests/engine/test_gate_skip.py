"""Laws of gate skipping at inference (DESIGN §3: closed gates skip the geometric core),
and of its training counterpart ``gate_skip_backward`` (the core's backward skipped).

With ``NetworkConfig.gate_skip = s > 0`` and grad disabled, the only change to the forward
is that tokens with gate ``g < s`` lose their term ``g·attn``: the result equals the dense
computation with those gates set to zero. The reference below is exactly that — the dense
core (``ThermoCell._attention``) times the thresholded gate — patched into a twin network.
"""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_net, tokens
from torch import Tensor

from morpho.cells_thermo import ThermoCell
from morpho.network import Network, NetworkConfig

SKIP = 0.5


def reference_geometric(cell: ThermoCell, threshold: float):  # type: ignore[no-untyped-def]
    """``y + g' ⊙ attn(xn)`` computed densely, with ``g' = 0`` where ``g < threshold``."""

    def add(y: Tensor, xn: Tensor, g: Tensor, w_qkv: Tensor, w_out: Tensor) -> Tensor:
        g = torch.where(g < threshold, 0.0, g)
        return y + g[..., None] * cell._attention(xn, w_qkv, w_out)

    return add


def mixed_net(gate_skip: float, gate_bias: float | None = None, seed: int = 1) -> Network:
    """Tiny network whose gates vary by token and cell around 1/2 (or sit at ``gate_bias``)."""
    net = tiny_net(gate_skip=gate_skip)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bank = net.banks["w_pred"]  # a predictor: surprise, hence the gate, varies per token
        bank.copy_(torch.randn(bank.shape, generator=gen) * 0.4)
        net.banks["gate"][:, 0] = 2.0
        n = net.banks["gate"].shape[0]
        bias = torch.randn(n, generator=gen) if gate_bias is None else torch.full((n,), gate_bias)
        net.banks["gate"][:, 1] = bias
    return net


def dense_twin(net: Network) -> Network:
    """The same parameters with gate skipping off (at inference and in the backward)."""
    twin = Network(
        NetworkConfig(**{**net.cfg.__dict__, "gate_skip": 0.0, "gate_skip_backward": 0.0})
    )
    twin.load_state_dict(net.state_dict())
    return twin


def twin_reference(net: Network, threshold: float) -> Network:
    """The same parameters, forward with the dense core and thresholded gates."""
    twin = dense_twin(net)
    twin.cell._add_geometric = reference_geometric(twin.cell, threshold)  # type: ignore[method-assign]
    return twin


def spy_compact_calls(monkeypatch) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """Record the calls of the compact core (``ThermoCell._open_attention``): for each, the
    cells it attends for and the padded query count ``Tq``."""
    calls: list[tuple[int, int]] = []
    original = ThermoCell._open_attention

    def spy(self, xn, pos, *rest):  # type: ignore[no-untyped-def]
        calls.append((xn.shape[0], pos.shape[1]))
        return original(self, xn, pos, *rest)

    monkeypatch.setattr(ThermoCell, "_open_attention", spy)
    return calls


def test_gate_skip_zero_is_the_dense_forward_bit_for_bit() -> None:
    net, x = mixed_net(0.0), tokens(0, seq_len=12)
    with torch.no_grad():
        out = net(x)
        ref = twin_reference(net, 0.0)(x)
    assert torch.equal(out, ref)
    assert torch.equal(out, net(x))  # the grad-enabled (training) forward agrees bit for bit


@pytest.mark.parametrize("crossover", [1.0, 0.0], ids=["compact", "dense-fallback"])
def test_skip_equals_dense_with_closed_gates_zeroed(monkeypatch, crossover: float) -> None:
    monkeypatch.setattr(ThermoCell, "dense_crossover", crossover)
    calls = spy_compact_calls(monkeypatch)
    net, x = mixed_net(SKIP), tokens(0, batch=3, seq_len=16)
    dense = dense_twin(net)
    ref_net = twin_reference(net, SKIP)
    with torch.no_grad():
        rec, ref_rec, full = net.run(x), ref_net.run(x), dense(x)
    out, ref = rec.logits, ref_rec.logits
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out, full, atol=1e-3), "no gate was dropped: the test is vacuous"
    assert (len(calls) > 0) == (crossover == 1.0)
    assert crossover < 1.0 or any(tq < 16 for _, tq in calls), "no level had a closed token"
    # statistics report the true gates, not the thresholded ones
    torch.testing.assert_close(rec.stats["gate_mean"], ref_rec.stats["gate_mean"])


@pytest.mark.parametrize("share", [0.05, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("shut_cell", [False, True])
def test_compact_core_on_random_gates(monkeypatch, share: float, shut_cell: bool) -> None:
    """The cell-level core on random gates: rows of unequal counts, optionally a shut cell."""
    monkeypatch.setattr(ThermoCell, "dense_crossover", 1.0)
    calls = spy_compact_calls(monkeypatch)
    cell = ThermoCell(n_heads=2, gate_skip=SKIP)
    gen = torch.Generator().manual_seed(0)
    n, B, T, d = 3, 2, 20, 8
    xn, y = torch.randn(n, B, T, d, generator=gen), torch.randn(n, B, T, d, generator=gen)
    w_qkv, w_out = torch.randn(n, d, 3 * d, generator=gen), torch.randn(n, d, d, generator=gen)
    g = torch.rand(n, B, T, generator=gen) * SKIP / (1 - share)  # P(g >= SKIP) = share
    if shut_cell:
        g[1] = 0.0  # dropped before its keys and values are computed
    with torch.no_grad():
        out = cell._add_geometric(y.clone(), xn, g, w_qkv, w_out)  # updates y in place
        ref = reference_geometric(cell, SKIP)(y, xn, g, w_qkv, w_out)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert [cells for cells, _ in calls] == [n - shut_cell]


def test_all_gates_closed_never_compute_the_core(monkeypatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> Tensor:
        raise AssertionError("the geometric core ran with every gate closed")

    net, x = mixed_net(0.01, gate_bias=-20.0), tokens(0, seq_len=12)
    with torch.no_grad():
        dense = twin_reference(net, 0.0)(x)  # g ≈ 1e-9: dense adds almost nothing
        monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", forbidden)
        out = net(x)
        no_core = twin_reference(net, 1.0)  # every gate zeroed ...
        monkeypatch.setattr(no_core.cell, "_attention", lambda xn, *w: torch.zeros_like(xn))
        bare = no_core(x)  # ... and no core: the no-attention path
    assert torch.equal(out, bare)
    torch.testing.assert_close(out, dense, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("crossover", [1.0, 0.5], ids=["compact", "dense-fallback"])
def test_all_gates_open_equals_dense(monkeypatch, crossover: float) -> None:
    monkeypatch.setattr(ThermoCell, "dense_crossover", crossover)
    calls = spy_compact_calls(monkeypatch)
    net, x = mixed_net(SKIP, gate_bias=20.0), tokens(0, seq_len=12)
    with torch.no_grad():
        out = net(x)
        ref = dense_twin(net)(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    if crossover < 1.0:  # the measured fallback: every row is full, the dense core runs
        assert not calls and torch.equal(out, ref)
    else:
        assert calls and all(tq == 12 for _, tq in calls)


def test_skipping_keeps_causality(monkeypatch) -> None:
    monkeypatch.setattr(ThermoCell, "dense_crossover", 1.0)  # the compact path
    net, x = mixed_net(SKIP), tokens(0, batch=2, seq_len=16)
    future = x.clone()
    future[:, 9:] = (future[:, 9:] + 5) % 16
    with torch.no_grad():
        a, b = net(x), net(future)
    torch.testing.assert_close(a[:, :9], b[:, :9], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, 9:], b[:, 9:])


def test_training_forward_ignores_gate_skip() -> None:
    net, x = mixed_net(SKIP), tokens(0, seq_len=12)
    dense = dense_twin(net)
    out, ref = net(x), dense(x)
    assert torch.equal(out, ref)
    out.sum().backward()
    ref.sum().backward()
    for (name, p), q in zip(net.named_parameters(), dense.parameters(), strict=True):
        assert (p.grad is None and q.grad is None) or torch.equal(p.grad, q.grad), name


@pytest.mark.parametrize("gate_skip", [-0.1, 1.5])
def test_gate_skip_out_of_range_is_refused(gate_skip: float) -> None:
    with pytest.raises(ValueError, match=r"gate_skip must be in \[0, 1\]; got"):
        NetworkConfig(gate_skip=gate_skip)
    with pytest.raises(ValueError, match=r"gate_skip_backward must be in \[0, 1\]; got"):
        NetworkConfig(gate_skip_backward=gate_skip)


# ------------------------------------------------------------- gate_skip_backward
def sparse_backward_net(theta: float, gate_bias: float | None = None) -> Network:
    net = mixed_net(0.0, gate_bias=gate_bias)
    twin = Network(NetworkConfig(**{**net.cfg.__dict__, "gate_skip_backward": theta}))
    twin.load_state_dict(net.state_dict())
    return twin


def masked_reference(cell: ThermoCell, theta: float):  # type: ignore[no-untyped-def]
    """Dense core; its parameters and inputs get gradient only through tokens with
    ``g ≥ θ`` (weighted by ``g``), the gate through every token."""

    def add(y: Tensor, xn: Tensor, g: Tensor, w_qkv: Tensor, w_out: Tensor) -> Tensor:
        attn = cell._attention(xn, w_qkv, w_out)
        keep = torch.where(g >= theta, g, 0.0).detach()
        return y + g[..., None] * attn.detach() + keep[..., None] * (attn - attn.detach())

    return add


def grads(net: Network, x: Tensor) -> tuple[Tensor, dict[str, Tensor | None]]:
    rec = net.run(x)
    out = rec.logits
    loss = (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum() + rec.aux_loss
    names, params = zip(*net.named_parameters(), strict=True)
    got = torch.autograd.grad(loss, params, allow_unused=True)
    return out.detach(), dict(zip(names, got, strict=True))


def assert_same_grads(
    net: Network, got: dict[str, Tensor | None], want: dict[str, Tensor | None]
) -> None:
    """Every parameter's gradient agrees (no gradient counts as zero)."""
    params = dict(net.named_parameters())
    for name, g in want.items():
        zero = torch.zeros_like(params[name])
        torch.testing.assert_close(
            zero if got[name] is None else got[name],
            zero if g is None else g,
            rtol=1e-4,
            atol=1e-6,
            msg=name,
        )


@pytest.mark.parametrize("gate_bias", [-2.5, -1.0, None])
def test_sparse_backward_is_the_dense_forward_with_closed_tokens_cut_off(
    monkeypatch, gate_bias: float | None
) -> None:
    """Same forward bit for bit; every gradient that of the dense core whose parameters
    and inputs see the closed tokens' gradient removed, while every gate sees all of it."""
    monkeypatch.setattr(ThermoCell, "dense_crossover", 1.0)  # always the compact path
    theta = 0.5
    sparse = sparse_backward_net(theta, gate_bias)
    dense = dense_twin(sparse)
    reference = dense_twin(sparse)
    reference.cell._add_geometric = masked_reference(reference.cell, theta)  # type: ignore[method-assign]
    x = tokens(0, seq_len=12)
    out, got = grads(sparse, x)
    out_dense, got_dense = grads(dense, x)
    _, want = grads(reference, x)
    assert torch.equal(out, out_dense)
    # something was cut: the core's gradient is not the dense one
    assert not torch.allclose(got["banks.w_qkv"], got_dense["banks.w_qkv"])
    assert got["banks.gate"] is not None
    assert_same_grads(sparse, got, want)


def test_sparse_backward_with_every_gate_shut_leaves_the_core_untrained() -> None:
    sparse = sparse_backward_net(1.0)  # g < 1 always: every token closed
    _, got = grads(sparse, tokens(0, seq_len=12))
    for name in ("banks.w_qkv", "banks.w_attn_out"):
        assert got[name] is None or not got[name].any(), name
    assert got["banks.gate"] is not None and got["banks.gate"].any()  # the gate still learns


def test_sparse_backward_off_at_inference_and_when_open() -> None:
    """Under no_grad it changes nothing; with every gate open it is the dense step exactly."""
    x = tokens(1, seq_len=12)
    sparse = sparse_backward_net(0.5, gate_bias=20.0)
    dense = dense_twin(sparse)
    with torch.no_grad():
        assert torch.equal(sparse(x), dense(x))
    out, got = grads(sparse, x)
    out_dense, got_dense = grads(dense, x)
    assert torch.equal(out, out_dense)
    for name, g in got_dense.items():
        assert (g is None and got[name] is None) or torch.equal(got[name], g), name


def test_sparse_backward_past_the_crossover_cuts_the_same_gradient(monkeypatch) -> None:
    """Past the dense crossover the dense core runs, with the same gradient cut."""
    monkeypatch.setattr(ThermoCell, "dense_crossover", 0.0)  # always the dense fallback
    theta = 0.5
    sparse = sparse_backward_net(theta)
    reference = dense_twin(sparse)
    reference.cell._add_geometric = masked_reference(reference.cell, theta)  # type: ignore[method-assign]
    x = tokens(2, seq_len=12)
    _, got = grads(sparse, x)
    _, want = grads(reference, x)
    assert_same_grads(sparse, got, want)


def test_sparse_backward_leaves_the_lyapunov_monitor_alone() -> None:
    """The monitor measures the forward's Jacobian, whatever the training backward cuts."""
    from morpho.criticality import tissue_lyapunov

    sparse = sparse_backward_net(0.8)
    dense = dense_twin(sparse)
    x = tokens(3, seq_len=12)
    lams = [
        tissue_lyapunov(
            net, net.embed[x].detach(), 4, t0=6, iters=4, generator=torch.Generator().manual_seed(0)
        )
        for net in (sparse, dense)
    ]
    torch.testing.assert_close(lams[0], lams[1])
    assert sparse.cell.gate_skip_backward == 0.8  # restored


def test_sparse_backward_under_forward_mode_is_the_dense_tangent() -> None:
    sparse = sparse_backward_net(0.5)
    dense = dense_twin(sparse)
    emb = sparse.embed[tokens(4, seq_len=12)].detach()
    v = torch.randn(emb.shape, generator=torch.Generator().manual_seed(5))
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):  # the fused kernels have no forward-mode derivative
        _, t_sparse = torch.func.jvp(sparse.forward_tissue, (emb,), (v,))
        _, t_dense = torch.func.jvp(dense.forward_tissue, (emb,), (v,))
    torch.testing.assert_close(t_sparse, t_dense)

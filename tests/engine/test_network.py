"""Laws of the network: the batched level-wise forward equals a slow per-cell reference.

The reference below loops over cells in level order and over edges one at a time; only
the math *inside* one cell (the cell type's ``forward_level`` on a one-row slice of the
banks) is shared with the engine. Aggregation, input injection, readout and head are
re-written. The laws run on each cell type under test.
"""

from __future__ import annotations

import pytest
import torch
from conftest import CELL_TYPES_UNDER_TEST, cell_of, make_optimizer, tiny_net, tokens, train
from torch import Tensor

import morpho
from morpho.network import Network, NetworkConfig
from morpho.tissue import HIDDEN, INPUT, OUTPUT


def reference_forward(net: Network, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(logits, aux_loss, per-cell gate mean)`` computed one cell and one edge at a time."""
    t = net.tissue
    emb = net.embed[x]  # (B, T, d)
    strength = net.banks["strength"]
    edges = t.edge_index.T.tolist()
    y: dict[int, Tensor] = {}
    aux = torch.zeros(())
    gate = torch.zeros(t.num_nodes)
    for i in sorted(range(t.num_nodes), key=lambda r: int(t.level[r])):
        inp = emb.clone() if int(t.role[i]) == INPUT else torch.zeros_like(emb)
        for j, (a, b) in enumerate(edges):
            if b == i:
                assert a in y, "an edge from a cell not yet computed: not a level DAG"
                inp = inp + strength[j] * y[a]
        row = {k: v[i : i + 1] for k, v in net.banks.items() if k != "strength"}
        out = net.cell.forward_level(row, inp[None], None)
        y[i] = out.y[0]
        aux = aux + out.aux_loss
        gate[i] = out.gate_mean[0]
    state = torch.zeros_like(emb)
    for i in range(t.num_nodes):
        if int(t.role[i]) == OUTPUT:
            state = state + net.banks["readout"][i] * y[i]
    normed = state / state.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()
    return (normed * net.head_norm) @ net.head, aux, gate


def _bank_grads(net: Network, logits: Tensor, aux: Tensor) -> dict[str, Tensor]:
    """Gradients of a fixed functional of (logits, aux) w.r.t. every parameter."""
    probe = torch.linspace(-1, 1, logits.numel()).view_as(logits)
    loss = (logits * probe).sum() + aux
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(
        loss, [dict(net.named_parameters())[n] for n in names], allow_unused=True
    )
    return {n: g for n, g in zip(names, grads, strict=True) if g is not None}


def _assert_matches_reference(net: Network, x: Tensor) -> None:
    """Forward values and the backward (every parameter's gradient) match the reference,
    with level pairs aggregated both ways: dense strength matrices and per-edge gathers."""
    ref_logits, ref_aux, ref_gate = reference_forward(net, x)
    ref_grads = _bank_grads(net, ref_logits, ref_aux)
    for dense in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(morpho.network, "DENSE_AGGREGATION", 10**9 if dense else 0)
            net.rebuild()
            assert all((inc.dense is not None) == dense for lp in net.plan for inc in lp.incoming)
            out = net.run(x)
        logits = out.logits
        torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(out.aux_loss, ref_aux, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(out.stats["gate_mean"], ref_gate.detach(), rtol=1e-4, atol=1e-6)
        grads = _bank_grads(net, logits, out.aux_loss)
        assert grads.keys() == ref_grads.keys()
        for name, g in grads.items():
            torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-5, msg=name)
    net.rebuild()


def _grown(net: Network) -> Network:
    """Split, connect across levels, remove, train, then scramble the edge strengths."""
    opt = make_optimizer("adamw", net)
    morpho.split(net, cell_of(net, HIDDEN, 1), optimizer=opt, noise=0.2)
    morpho.split(net, cell_of(net, INPUT, 0), optimizer=opt, noise=0.2)
    morpho.split(net, cell_of(net, OUTPUT, 1), optimizer=opt, noise=0.2)
    morpho.connect(net, cell_of(net, INPUT, 2), cell_of(net, OUTPUT, 0), optimizer=opt)
    morpho.connect(net, cell_of(net, INPUT, 1), cell_of(net, HIDDEN, 4), optimizer=opt)
    morpho.remove(net, cell_of(net, HIDDEN, 0), optimizer=opt, bridge=True)
    train(net, opt, 2)
    with torch.no_grad():
        net.banks["strength"].normal_()
    return net


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
def test_forward_matches_per_cell_reference_on_seed_tissue(cell_type: str) -> None:
    net = tiny_net(cell_type=cell_type)
    with torch.no_grad():
        net.banks["strength"].normal_()
    _assert_matches_reference(net, tokens(1, batch=3, seq_len=10))


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
def test_forward_matches_per_cell_reference_on_grown_tissue(cell_type: str) -> None:
    net = _grown(tiny_net(cell_type=cell_type))
    assert net.tissue.num_nodes == 12
    levels = net.tissue.level[net.tissue.edge_index]
    assert bool((levels[1] - levels[0] > 1).any()), "expected skip-level edges"
    _assert_matches_reference(net, tokens(2, batch=3, seq_len=10))


def test_forward_matches_reference_on_sparse_seed_with_demand_off() -> None:
    net = tiny_net(level_sizes=(3, 5, 4, 2), seed_fan_in=2, seed=3)
    fan_in = torch.bincount(net.tissue.edge_index[1], minlength=net.tissue.num_nodes)
    assert fan_in[net.tissue.level > 0].eq(2).all()
    _assert_matches_reference(net, tokens(3))


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
def test_fresh_network_for_a_grown_topology(cell_type: str) -> None:
    grown = _grown(tiny_net(cell_type=cell_type))
    fresh = Network(grown.cfg, tissue=grown.tissue.clone())
    assert fresh.banks["strength"].shape[0] == grown.tissue.edge_index.shape[1]
    for name, bank in fresh.banks.items():
        assert bank.shape == grown.banks[name].shape, name
    # strengths start at 1 / fan-in: every cell's inputs sum to unit scale
    fan_in = torch.bincount(fresh.tissue.edge_index[1], minlength=fresh.tissue.num_nodes)
    summed = torch.zeros(fresh.tissue.num_nodes).index_add(
        0, fresh.tissue.edge_index[1], fresh.banks["strength"].detach()
    )
    torch.testing.assert_close(summed[fan_in > 0], torch.ones(int((fan_in > 0).sum())))
    _assert_matches_reference(fresh, tokens(4))


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
def test_parameter_accounting_adds_up(cell_type: str) -> None:
    net = _grown(tiny_net(cell_type=cell_type))
    per_cell = net.params_per_cell()
    shared = net.embed.numel() + net.head.numel() + net.head_norm.numel()
    assert int(per_cell.sum()) + shared == net.n_params()


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
def test_readout_starts_as_the_mean_of_output_cells(cell_type: str) -> None:
    net = tiny_net(cell_type=cell_type)
    readout = net.banks["readout"].detach()
    is_out = net.tissue.role == OUTPUT
    assert torch.equal(readout[~is_out], torch.zeros(int((~is_out).sum())))
    torch.testing.assert_close(readout[is_out].sum(), torch.tensor(1.0))


def test_forward_rejects_bad_tokens(net) -> None:
    with pytest.raises(ValueError, match=r"\(B, T\) long"):
        net(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\(B, T\) long"):
        net(torch.zeros(3, dtype=torch.long))


def test_network_config_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="d_cell"):
        NetworkConfig(d_cell=7, n_heads=2)
    with pytest.raises(ValueError, match="level_sizes"):
        NetworkConfig(level_sizes=(3,))
    with pytest.raises(ValueError, match="vocab_size"):
        NetworkConfig(vocab_size=1)
    with pytest.raises(
        ValueError, match="unknown cell type 'nope'; expected one of: gated, gated-fresh, thermo"
    ):
        NetworkConfig(cell_type="nope")


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
def test_gradients_reach_every_bank(cell_type: str) -> None:
    net = tiny_net(cell_type=cell_type)
    with torch.no_grad():
        net.banks["strength"].normal_()
    x = tokens(0, seq_len=9)
    out = net.run(x[:, :-1])
    loss = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), x[:, 1:].flatten())
    (loss + out.aux_loss).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), f"no gradient for {name}"


def test_demand_with_a_tissue_made_under_inference_mode() -> None:
    """The device copy of ``gate_ema`` is cached by version; inference tensors have none."""
    net = tiny_net(demand_weight=0.5)
    x = tokens(5)
    with torch.no_grad():
        want = net(x)
    with torch.inference_mode():
        net.tissue.gate_ema = net.tissue.gate_ema.clone()  # an inference tensor
        torch.testing.assert_close(net(x), want)


def test_path_norm_follows_a_dtype_change() -> None:
    from morpho.criticality import path_norm

    net = tiny_net()
    single = path_norm(net)
    net.double()
    double = path_norm(net)
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), single)

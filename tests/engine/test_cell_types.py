"""Laws of the cell-type seam: a type declares its banks and settings; edits ask the type.

* the thermodynamic cell declares exactly its three output projections ``series="zero"``
  and the network's readout is the one ``split="share"`` bank;
* every bank a network holds is declared, with the declared row shape;
* an edit refuses a bank nobody declared, naming it and the declared ones;
* the declaration is what edits obey: the gated test cell declared without its zero bank
  loses function preservation under insert;
* settings: a type's ``Config`` is filled from ``[network]`` and ``[network.cell_options]``,
  with clear errors on unknown keys, misplaced keys and wrong types; bad declarations and
  unknown type names are refused listing the choices.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import CELL_TYPES_UNDER_TEST, GatedCell, cell_of, tiny_net, tokens

import morpho
import morpho.registry
from morpho.cells import CELL_TYPES, Bank
from morpho.cells_thermo import ThermoCell, ThermoConfig
from morpho.config import RunConfig
from morpho.network import EDGE_BANKS, NetworkConfig
from morpho.tissue import HIDDEN, INPUT


def test_thermo_declares_its_output_projections_zero_in_series() -> None:
    net = tiny_net()
    zero = {k for k, b in net.bank_specs.items() if b.series == "zero"}
    share = {k for k, b in net.bank_specs.items() if b.split == "share"}
    assert zero == {"w_inert", "w_attn_out", "w_mlp2", "readout"}
    assert share == {"readout"}


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
def test_every_bank_is_declared_with_its_shape(cell_type: str) -> None:
    net = tiny_net(cell_type=cell_type)
    assert set(net.banks) == set(net.bank_specs) | set(EDGE_BANKS)
    assert list(net.bank_specs)[:-1] == list(net.cell.banks(net.cfg.d_cell))
    for name, spec in net.bank_specs.items():
        assert tuple(net.banks[name].shape) == (net.tissue.num_nodes, *spec.shape), name


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
def test_an_undeclared_bank_is_refused_by_every_edit(cell_type: str) -> None:
    net = tiny_net(cell_type=cell_type)
    net.banks["extra"] = torch.nn.Parameter(torch.zeros(net.tissue.num_nodes, 3))
    before = [p.detach().clone() for p in net.parameters()]
    edits = [
        lambda: morpho.identity_edit(net),
        lambda: morpho.split_edit(net, cell_of(net, HIDDEN, 0)),
        lambda: morpho.edits.insert_edit(net, cell_of(net, HIDDEN, 0)),
        lambda: morpho.remove_edit(net, cell_of(net, HIDDEN, 0)),
    ]
    for edit in edits:
        with pytest.raises(
            ValueError, match=f"bank 'extra' is not declared by cell type '{cell_type}'; declared: "
        ):
            edit()
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before, strict=True))


class _GatedWithoutZeroBank(GatedCell):
    """The gated cell, declaring its output projection to be copied in series."""

    def banks(self, d: int) -> dict[str, Bank]:
        banks = super().banks(d)
        banks["w_out"] = Bank(banks["w_out"].shape, banks["w_out"].init, series="copy")
        return banks


@pytest.mark.parametrize("declared_zero", [True, False])
def test_edits_obey_the_declaration(declared_zero: bool, monkeypatch) -> None:
    """The same cell with and without ``series="zero"`` on its output projection: insert
    preserves the function exactly when the type declares it."""
    if not declared_zero:
        monkeypatch.setitem(CELL_TYPES._items, "gated", _GatedWithoutZeroBank)
    net = tiny_net(cell_type="gated")
    x = tokens(2)
    with torch.no_grad():
        before = net(x)
    morpho.insert(net, cell_of(net, INPUT, 0))
    with torch.no_grad():
        gap = float((net(x) - before).abs().max())
    assert gap < 1e-5 if declared_zero else gap > 1e-3


def test_fresh_rows_in_series_come_from_the_declared_init() -> None:
    """A bank declared ``series="fresh"`` gives the newborn a row of its own ``init``, drawn
    from the edit's generator; the function is still kept (the output projection is zero)."""
    net = tiny_net(cell_type="gated-fresh")
    x = tokens(3)
    with torch.no_grad():
        before = net(x)
    parent = cell_of(net, HIDDEN, 0)
    rows = {k: net.banks[k][net.row_of(parent)].detach().clone() for k in net.banks}
    gen = torch.Generator().manual_seed(11)
    edit = morpho.apply_edit(net, morpho.edits.insert_edit(net, parent, generator=gen))
    child = net.row_of(edit.info["new_cells"][0])
    replay = torch.Generator().manual_seed(11)
    for name in [k for k in net.banks if k in net.bank_specs]:  # the order edits visit
        spec, got = net.bank_specs[name], net.banks[name][child].detach()
        if spec.series == "fresh":  # drawn in bank order from the edit's generator
            assert torch.equal(got, spec.init(1, replay)[0]), name
            assert not torch.equal(got, rows[name]), name
        else:
            assert torch.equal(got, 0 * rows[name] if spec.series == "zero" else rows[name])
    with torch.no_grad():
        torch.testing.assert_close(net(x), before, rtol=1e-5, atol=1e-5)


def test_settings_come_from_the_network_and_its_cell_options_table() -> None:
    net = tiny_net(cell_type="gated", mlp_ratio=2, cell_options={"gate_bias": 1.5})
    assert net.cell.cfg.mlp_ratio == 2 and net.cell.cfg.gate_bias == 1.5
    assert torch.equal(net.banks["gate_bias"].detach(), torch.full((10,), 1.5))
    assert net.banks["w_in"].shape == (10, 8, 16)
    # through the one config coercer: a TOML integer becomes the declared float
    cfg = RunConfig().merged(
        {"network": {"cell_type": "gated", "cell_options": {"gate_bias": 2}, "vocab_size": 16}}
    )
    assert morpho.Network(cfg.network).cell.cfg.gate_bias == 2.0
    thermo = tiny_net(gate_skip=0.25, gate_skip_backward=0.5).cell
    assert isinstance(thermo, ThermoCell)
    assert thermo.cfg == ThermoConfig(
        n_heads=2, mlp_ratio=1, gate_skip=0.25, gate_skip_backward=0.5
    )
    assert (thermo.gate_skip, thermo.gate_skip_backward) == (0.25, 0.5)


def test_bad_settings_are_refused_naming_the_choices() -> None:
    def gated(**kw: object) -> NetworkConfig:
        return NetworkConfig(vocab_size=16, cell_type="gated", **kw)  # type: ignore[arg-type]

    with pytest.raises(
        ValueError, match="unknown config key network.cell_options.bias for cell type "
    ):
        gated(cell_options={"bias": 1.0})
    with pytest.raises(ValueError, match="expected one of: gate_bias$"):
        gated(cell_options={"bias": 1.0})
    with pytest.raises(ValueError, match="network.cell_options.mlp_ratio: set it as network"):
        gated(cell_options={"mlp_ratio": 3})
    with pytest.raises(ValueError, match="network.cell_options.gate_bias: expected float"):
        gated(cell_options={"gate_bias": "high"})
    with pytest.raises(ValueError, match=r"expected one of: \(none\)"):
        NetworkConfig(cell_options={"gate_bias": 1.0})
    with pytest.raises(ValueError, match="d_cell must be a positive multiple of n_heads=3"):
        NetworkConfig(d_cell=8, n_heads=3)
    with pytest.raises(ValueError, match="n_heads must be >= 1; got 0"):
        NetworkConfig(n_heads=0)
    gated(d_cell=7, n_heads=2)  # heads are the thermodynamic cell's business


def test_bad_declarations_are_refused() -> None:
    with pytest.raises(ValueError, match="series birth 'half'; expected one of: copy, zero"):
        Bank((2,), lambda n, gen: torch.zeros(n, 2), series="half")
    with pytest.raises(ValueError, match="split birth 'zero'; expected one of: copy, share"):
        Bank((2,), lambda n, gen: torch.zeros(n, 2), split="zero")

    class Misshapen(GatedCell):
        def banks(self, d: int) -> dict[str, Bank]:
            return {**super().banks(d), "norm": Bank((d,), lambda n, gen: torch.ones(n, d + 1))}

    with pytest.raises(ValueError, match=r"bank 'norm' of Misshapen initialises rows of shape"):
        Misshapen().init_rows(3, 4, torch.Generator())

    class Greedy(GatedCell):
        def banks(self, d: int) -> dict[str, Bank]:
            return {**super().banks(d), "readout": Bank((), lambda n, gen: torch.zeros(n))}

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(CELL_TYPES._items, "greedy", Greedy)
        with pytest.raises(ValueError, match=r"declares reserved banks \['readout'\]"):
            tiny_net(cell_type="greedy")


def test_the_registry_lists_the_valid_names() -> None:
    assert {"thermo", "gated"} <= set(CELL_TYPES.names())
    with pytest.raises(ValueError, match="unknown cell type 'thremo'; expected one of: gated"):
        NetworkConfig(cell_type="thremo")


def test_a_package_adds_its_cell_type_through_an_entry_point(monkeypatch) -> None:
    class EntryPoint:
        name = "plugged"

        def load(self) -> type:
            return GatedCell

    def entry_points(group: str) -> list[EntryPoint]:
        return [EntryPoint()] if group == "morpho.cell_types" else []

    monkeypatch.setattr(morpho.registry, "entry_points", entry_points)
    monkeypatch.setattr(CELL_TYPES, "_loaded", False)
    monkeypatch.setattr(CELL_TYPES, "_items", dict(CELL_TYPES._items))
    net = tiny_net(cell_type="plugged")
    assert isinstance(net.cell, GatedCell) and "w_gate" in net.banks


def test_the_default_backward_is_exact_and_thermo_restores_its_cut() -> None:
    gated = GatedCell()
    with gated.exact_backward():
        pass
    thermo = ThermoCell(gate_skip_backward=0.7)
    assert thermo.cfg == ThermoConfig(gate_skip_backward=0.7)
    with thermo.exact_backward():
        assert thermo.gate_skip_backward == 0.0
    assert thermo.gate_skip_backward == 0.7


def test_the_how_to_example_runs_and_keeps_the_laws(monkeypatch) -> None:
    """docs/cell_types.md's example cell, registered as written, splits and inserts
    function-preservingly."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "cell_types.md").read_text("utf-8")
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block is not None, "the how-to has a python block"
    monkeypatch.setattr(CELL_TYPES, "_items", dict(CELL_TYPES._items))
    code = block.group(1) + '\nregister_cell_type("doc-example", GatedCell)\n'
    exec(compile(code, "cell_types.md", "exec"), {})  # noqa: S102
    net = tiny_net(cell_type="doc-example", cell_options={"gate_bias": 1.0})
    x = tokens(5)
    with torch.no_grad():
        before = net(x)
    morpho.insert(net, cell_of(net, HIDDEN, 0))
    morpho.split(net, cell_of(net, HIDDEN, 1))
    with torch.no_grad():
        torch.testing.assert_close(net(x), before, rtol=1e-5, atol=1e-5)

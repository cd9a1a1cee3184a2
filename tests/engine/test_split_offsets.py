"""Laws of a split along ``±δ`` (:func:`morpho.edits.split_edit` ``offsets`` / ``antithetic``).

* the daughters' copied rows are exactly ``θ + δ`` and ``θ − δ``; every other row is the
  plain split's;
* the function is preserved to first order: the output error of an antithetic split falls
  like ``ε²`` (÷10 in ``ε`` → about ÷100 in error), that of independent noise like ``ε``;
* an offset for a bank a split does not copy, or of the wrong shape, is refused.
"""

from __future__ import annotations

import pytest
import torch
from conftest import CELL_TYPES_UNDER_TEST, cell_of, make_optimizer, tiny_net, tokens, train

import morpho
from morpho.apply import apply_edit
from morpho.edits import split_edit
from morpho.network import EDGE_BANKS
from morpho.tissue import HIDDEN


def _trained(cell_type: str = "wide"):
    torch.manual_seed(0)
    net = tiny_net(cell_type=cell_type)
    train(net, make_optimizer("adamw", net), 2)
    return net


def _copied(net) -> list[str]:
    return [k for k in net.banks if k not in EDGE_BANKS and net.bank_specs[k].split == "copy"]


def test_offsets_give_the_daughters_plus_and_minus_delta() -> None:
    net = _trained()
    cid = cell_of(net, HIDDEN, 1)
    r = net.row_of(cid)
    mother = {k: v[r].detach().clone() for k, v in net.banks.items()}
    g = torch.Generator().manual_seed(3)
    offsets = {k: torch.randn(net.banks[k].shape[1:], generator=g) for k in _copied(net)}
    plain = split_edit(net, cid)
    edit = apply_edit(net, split_edit(net, cid, offsets=offsets))
    a, b = (net.row_of(c) for c in edit.info["new_cells"])
    assert plain.info["new_cells"] == edit.info["new_cells"]
    for k in _copied(net):
        assert torch.equal(net.banks[k][a].detach(), mother[k] + offsets[k])
        assert torch.equal(net.banks[k][b].detach(), mother[k] - offsets[k])
    assert torch.equal(net.banks["readout"][a].detach(), mother["readout"] * 0.5)


def _split_error(cell_type: str, eps: float, antithetic: bool) -> float:
    net = _trained(cell_type)
    x = tokens(5, batch=2, seq_len=10)
    with torch.no_grad():
        before = net(x)
    gen = torch.Generator().manual_seed(1)
    cid = cell_of(net, HIDDEN, 1)
    torch.manual_seed(2)  # the independent noise's draws
    apply_edit(net, split_edit(net, cid, eps, generator=gen, antithetic=antithetic))
    with torch.no_grad():
        return float((net(x) - before).abs().max())


@pytest.mark.parametrize("cell_type", CELL_TYPES_UNDER_TEST)
def test_antithetic_split_preserves_function_to_first_order(cell_type: str) -> None:
    anti = [_split_error(cell_type, e, True) for e in (1e-1, 1e-2)]
    indep = [_split_error(cell_type, e, False) for e in (1e-1, 1e-2)]
    assert anti[0] / anti[1] > 30  # second order: ÷100 for ÷10 in ε
    assert 3 < indep[0] / indep[1] < 30  # first order: ÷10
    assert anti[1] < indep[1] / 3


def test_bad_offsets_are_refused() -> None:
    net = _trained()
    cid = cell_of(net, HIDDEN, 1)
    with pytest.raises(ValueError, match="offset for bank 'readout', which a split does not"):
        split_edit(net, cid, offsets={"readout": torch.zeros(())})
    name = _copied(net)[0]
    with pytest.raises(ValueError, match=f"offset for bank '{name}' has shape"):
        split_edit(net, cid, offsets={name: torch.zeros(99)})


def test_public_split_takes_antithetic_noise() -> None:
    net = _trained()
    cid = cell_of(net, HIDDEN, 1)
    r = net.row_of(cid)
    mother = {k: net.banks[k][r].detach().clone() for k in _copied(net)}
    edit = morpho.split(net, cid, noise=0.1, antithetic=True)
    a, b = (net.row_of(c) for c in edit.info["new_cells"])
    for k, m in mother.items():
        torch.testing.assert_close(net.banks[k][a] + net.banks[k][b], 2 * m)

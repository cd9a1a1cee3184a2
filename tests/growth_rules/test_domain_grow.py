"""The domain-growth rule: a tissue-wide jump of surprise gives birth to a cell in series
(identity at birth) that records the new domain; steady surprise, a refractory period after
a birth, or too short a history propose nothing; the known-boundary control fires once per
boundary without reading a signal."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import K, tiny_net, tokens, view

from morpho.apply import apply_edit
from morpho.growth.dispatch import edit_for
from morpho.growth.rule import RULES
from morpho.growth_rules.domain_grow import DomainGrow
from morpho.tissue import OUTPUT


def _jumped(v, factor: float = 3.0, top: int | None = None):
    """Cells' surprise and the tissue's cross-entropy flat, then ``factor``× at the last
    check (cell row ``top`` twice as much)."""
    s = v.cell_history["surprise_ema"]
    s[:] = 0.5
    s[:, -1] = 0.5 * factor
    if top is not None:
        s[top, -1] = 0.5 * factor * 2
    loss = torch.full((K, 2), 2.0)  # (EMA, fast peak) per check
    loss[-1, 1] = 2.0 * factor
    return dataclasses.replace(v, loss_history=loss)


def test_a_jump_gives_birth_after_the_most_surprised_cell_for_the_next_domain() -> None:
    v = _jumped(view(), top=3)
    events = DomainGrow(window=K - 1, per_jump=1).propose(v)
    assert [e.kind for e in events] == ["insert"]
    assert events[0].cells == (int(v.tissue.cell_id[3]),)
    assert events[0].options == {"task": 1}
    assert "domain 1" in events[0].reason


@pytest.mark.parametrize("factor", [1.1, 0.5])
@pytest.mark.parametrize("signal", ["loss", "surprise"])
def test_steady_or_falling_surprise_proposes_nothing(factor: float, signal: str) -> None:
    assert DomainGrow(window=K - 1, signal=signal).propose(_jumped(view(), factor)) == []


def test_each_signal_reads_its_own_surprise() -> None:
    v = _jumped(view())
    cells_only = dataclasses.replace(v, loss_history=torch.full((K, 2), 2.0))
    assert DomainGrow(window=K - 1, signal="loss").propose(cells_only) == []
    assert len(DomainGrow(window=K - 1, signal="surprise").propose(cells_only)) == 1
    assert DomainGrow(window=K - 1).propose(dataclasses.replace(v, loss_history=None)) == []


def test_no_jump_is_read_within_the_refractory_period_of_a_birth() -> None:
    v = _jumped(view())
    v.tissue.task[0], v.tissue.birth[0] = 1, v.step - 10
    assert DomainGrow(window=K - 1, refractory=50).propose(v) == []
    events = DomainGrow(window=K - 1, refractory=5).propose(v)
    assert events and events[0].options == {"task": 2}


def test_the_known_boundary_control_fires_once_per_boundary_without_a_signal() -> None:
    v = _jumped(view(), factor=1.0)  # flat surprise
    rule = DomainGrow(window=K - 1, known=v.step)
    assert [e.options for e in rule.propose(v)] == [{"task": 1}]
    v.tissue.task[0] = 1  # the boundary's cell is born: nothing more until the next one
    assert rule.propose(v) == []
    last = dataclasses.replace(_jumped(view(), factor=1.0), total_steps=v.step)
    assert rule.propose(last) == []  # the run's last step: no domain follows


def test_the_birth_preserves_the_function_and_records_the_domain() -> None:
    net = tiny_net(cell_type="wide")
    x = tokens(0)
    before = net(x)
    rows = [r for r in range(net.tissue.num_nodes) if int(net.tissue.role[r]) != OUTPUT]
    v = _jumped(view(tissue=net.tissue.clone()), top=rows[0])
    event = DomainGrow(window=K - 1).propose(v)[0]
    apply_edit(net, edit_for(net, event))
    assert torch.allclose(net(x), before, atol=1e-5)
    assert sorted(net.tissue.task.tolist()).count(1) == 1


def test_registered_and_refuses_bad_parameters() -> None:
    assert RULES.get("domain_grow") is DomainGrow
    with pytest.raises(ValueError, match="growth.domain_grow.ratio must be > 1; got 1.0"):
        DomainGrow(ratio=1.0)
    with pytest.raises(ValueError, match="growth.domain_grow.known must be >= 0; got -1"):
        DomainGrow(known=-1)
    with pytest.raises(ValueError, match="growth.domain_grow.signal must be loss or surprise"):
        DomainGrow(signal="gate")

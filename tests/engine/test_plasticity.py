"""Plasticity by birth task: with no cell of a later task nothing changes; once one exists,
each step's update of older cells' bank rows is scaled by ``old_lr_scale`` (0: frozen) and
of the shared parameters by ``shared_lr_scale``, against a hand-built reference."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
from conftest import loss_of, tiny_net, tokens

from morpho.config import RunConfig
from morpho.plasticity import Plasticity, PlasticityConfig


def _step(net: torch.nn.Module, opt: torch.optim.Optimizer, seed: int) -> None:
    loss = loss_of(net, tokens(seed, seq_len=9))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _run(old: float, shared: float, new_task: bool) -> tuple[Any, dict, dict]:
    """One step with the policy; returns the net, the params before and the unscaled step."""
    torch.manual_seed(0)
    net = tiny_net(cell_type="wide")
    if new_task:
        net.tissue.task[-3:] = 1  # three cells of the newest task
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    trainer = SimpleNamespace(net=net)
    policy = Plasticity(PlasticityConfig(enabled=True, old_lr_scale=old, shared_lr_scale=shared))
    policy.on_train_start(trainer)  # type: ignore[arg-type]
    p0 = {n: p.detach().clone() for n, p in net.named_parameters()}
    _step(net, opt, 0)
    p1 = {n: p.detach().clone() for n, p in net.named_parameters()}
    policy.on_step_end(trainer, 1, None)  # type: ignore[arg-type]
    return net, p0, p1


def test_nothing_changes_before_a_cell_of_a_later_task_exists() -> None:
    net, _, p1 = _run(0.0, 0.0, new_task=False)
    assert all(torch.equal(p, p1[n]) for n, p in net.named_parameters())


@pytest.mark.parametrize(("old", "shared"), [(0.0, 1.0), (0.25, 0.5)])
def test_old_rows_and_shared_parameters_move_by_their_scale(old: float, shared: float) -> None:
    net, p0, p1 = _run(old, shared, new_task=True)
    old_rows = net.tissue.task == 0
    for name, p in net.named_parameters():
        if name.startswith("banks.") and name != "banks.strength":
            want = p1[name].clone()
            want[old_rows] = p0[name][old_rows] + old * (p1[name][old_rows] - p0[name][old_rows])
        else:
            want = p0[name] + shared * (p1[name] - p0[name])
        assert torch.allclose(p, want, atol=1e-7), name
    if old == 0.0:  # frozen: bit-identical to before the step
        assert torch.equal(net.banks["w_write"][old_rows], p0["banks.w_write"][old_rows])


def test_scales_out_of_range_are_refused_and_the_section_is_in_the_run_config() -> None:
    with pytest.raises(ValueError, match=r"plasticity.old_lr_scale must be in \[0, 1\]; got 2"):
        PlasticityConfig(old_lr_scale=2)
    cfg = RunConfig().merged({"plasticity": {"enabled": True, "old_lr_scale": 0.1}})
    assert cfg.plasticity.old_lr_scale == 0.1
    assert cfg.to_dict()["plasticity"]["enabled"] is True


def test_self_replay_samples_the_network_once_per_new_task_and_hands_it_to_the_task() -> None:
    from morpho.apply import apply_edit
    from morpho.edits import insert_edit

    net = tiny_net(cell_type="wide")
    kept: list[torch.Tensor] = []
    trainer = SimpleNamespace(
        net=net,
        task=SimpleNamespace(remember=kept.append),
        cfg=SimpleNamespace(seed=0, seq_len=6),
        device=torch.device("cpu"),
    )
    policy = Plasticity(PlasticityConfig(enabled=True, self_replay=5))
    feeds = [int(net.tissue.cell_id[r]) for r in net.tissue.edge_index[0].unique()[:2]]
    for cell in feeds:  # two cells born for task 1: one sample
        edit = insert_edit(net, cell, task=1)
        apply_edit(net, edit)
        policy.on_edit(trainer, edit)  # type: ignore[arg-type]
    assert len(kept) == 1 and kept[0].shape == (5, 7)
    assert int(kept[0].min()) >= 0 and int(kept[0].max()) < net.cfg.vocab_size
    state = policy.state_dict()
    assert state["remembered"] == 1 and torch.equal(state["samples"][0], kept[0])
    resumed = Plasticity(PlasticityConfig(enabled=True, self_replay=5))
    resumed.load_state_dict(state)
    resumed.on_train_start(trainer)  # type: ignore[arg-type]
    assert len(kept) == 2 and torch.equal(kept[1], kept[0])  # the task's memory back

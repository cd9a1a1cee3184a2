"""A sync-free training step never reads tensor data back to the host.

On CUDA, ``.item()``, ``bool(t)``, ``int(t)``, ``nonzero``, ``unique`` and friends make the
host wait for the device. They all reach the dispatcher as ops whose output size or value
depends on tensor data (``aten._local_scalar_dense`` for the scalar reads), so a
``TorchDispatchMode`` sees them on the CPU too: this runs in CI without a GPU and guards
the law that ``tests/engine/test_gpu.py`` checks with CUDA's sync debug mode. Monitors that run at
an interval (the Lyapunov estimate, the scheduler) may sync there; these steps are between.
"""

from __future__ import annotations

import traceback
from typing import Any

import pytest
import torch
from conftest import ALL_ON
from torch.utils._python_dispatch import TorchDispatchMode

from morpho.config import RunConfig
from morpho.grow import build_network, build_task
from morpho.growth.scheduler import Scheduler
from morpho.mechanisms import build_terms
from morpho.progress import NoBar
from morpho.trainer import Trainer

aten = torch.ops.aten
HOST_READS = {
    aten._local_scalar_dense,
    aten.nonzero,
    aten.masked_select,
    aten._unique2,
    aten.unique_consecutive,
    aten.unique_dim,
    aten.repeat_interleave,
}


class HostReads(TorchDispatchMode):
    """Records every op that needs tensor data on the host, with where it was called."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func.overloadpacket in HOST_READS:
            where = [line for line in traceback.format_stack() if "/morpho/" in line]
            self.calls.append(f"{func}\n{''.join(where[-2:])}")
        return func(*args, **(kwargs or {}))


def trainer_for(over: dict[str, Any], growing: bool = False) -> Trainer:
    cfg = RunConfig.preset("small").merged(over)
    cfg = cfg.merged({"train": {"sync_free": True, "batch_size": 4, "seq_len": 32}})
    task = build_task(cfg)
    scheduler = [Scheduler(cfg.growth)] if growing else []
    net = build_network(cfg, task.vocab_size)
    return Trainer(net, task, cfg.train, callbacks=scheduler, terms=build_terms(cfg))


@pytest.mark.parametrize("name", ["default", "every mechanism on"])
def test_sync_free_step_reads_nothing_back(name: str) -> None:
    trainer = trainer_for({} if name == "default" else ALL_ON)
    trainer.step = 1  # not a Lyapunov step (those run at an interval)
    for _ in range(2):  # warm-up: optimizer state, cached plans
        trainer.train_step()
    probe = HostReads()
    with probe:
        trainer.train_step()
    assert not probe.calls, "host reads in a sync-free step:\n" + "\n".join(probe.calls)


@pytest.mark.parametrize("name", ["default", "every mechanism on"])
def test_sync_free_run_step_with_the_scheduler_reads_nothing_back(name: str) -> None:
    """The whole loop step — train step, the scheduler's per-step EMA update, bookkeeping —
    on a step that is not a log, check, eval or Lyapunov step."""
    trainer = trainer_for({} if name == "default" else ALL_ON, growing=True)
    scheduler = trainer.callbacks[0]
    assert isinstance(scheduler, Scheduler)
    trainer.step = 11
    for _ in range(2):  # steps 11, 12
        trainer._one_step(NoBar())
    step = trainer.step  # 13: not a multiple of log_every, the check interval or λ's interval
    assert step % trainer.cfg.log_every and step % scheduler.cfg.interval
    every = ALL_ON["lyapunov"]["every"] if name != "default" else 0
    assert not every or step % every
    probe = HostReads()
    with probe:
        trainer._one_step(NoBar())
    assert not probe.calls, "host reads in a sync-free loop step:\n" + "\n".join(probe.calls)


def test_the_probe_sees_a_host_read() -> None:
    """Without ``sync_free`` the non-finite guard reads the loss on the host: caught."""
    trainer = trainer_for({})
    trainer.cfg = trainer.cfg.__class__(**{**trainer.cfg.__dict__, "sync_free": False})
    trainer.train_step()
    probe = HostReads()
    with probe:
        trainer.train_step()
    assert any("_local_scalar_dense" in c for c in probe.calls)


def test_act_without_early_exit_trains_the_same_objective() -> None:
    """Under sync_free ACT runs its whole budget, but the losses and statistics of a
    forward are the early-exit ones: passes no token needed are left out of the means."""
    from conftest import tiny_net, tokens

    net = tiny_net(ponder_max=4)
    with torch.no_grad():
        net.halt.linear.bias.fill_(4.0)  # every token halts at pass 1 or 2
    x = tokens(0, seq_len=12)

    def record() -> tuple[dict[str, Any], Any]:
        out = net.run(x)
        values = {"logits": out.logits, "aux": out.aux_loss, "gates": out.gate_activity}
        return {**values, **out.stats, "passes": out.ponder.n_passes_run}, out.ponder

    early, _ = record()
    net.sync_free = True
    full, ponder = record()
    assert early["passes"] < 4 and full["passes"] == 4
    assert bool(ponder.live[: early["passes"]].all()) and not ponder.live[-1]
    for key in early:
        if key != "passes":
            torch.testing.assert_close(full[key], early[key], msg=key)


def test_sync_free_refuses_the_sparse_backward() -> None:
    with pytest.raises(ValueError, match=r"train.sync_free needs network.gate_skip_backward"):
        trainer_for({"network": {"gate_skip_backward": 0.3}})

"""Dense FLOP accounting: every training-mode forward is charged, backward at 2× its forward.

Laws: a static model's total is exactly ``3 · f(T) · tokens`` per step and evaluation adds
nothing; the knockout test, KNIFE and Lyapunov probes and the edge-gradient product are each
charged by their rule; the multipliers agree with torch's ``FlopCounterMode``, which
measures the matmuls each call actually runs; totals survive a checkpoint round trip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from conftest import tiny_net, tokens
from torch.utils.flop_counter import FlopCounterMode

from morpho.criticality import tissue_lyapunov
from morpho.flops import FlopCounter, dense_per_token, head_per_token
from morpho.growth.probes import knockout_dloss


class _Static(torch.nn.Module):
    """An embedding and two linear layers: a model whose FLOPs are all matmuls."""

    def __init__(self, vocab: int = 16, d: int = 32) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, d)
        self.mid = torch.nn.Linear(d, d)
        self.head = torch.nn.Linear(d, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.mid(self.embed(x))))

    def flops_per_token(self, seq_len: int) -> float:
        return 2.0 * (self.mid.weight.numel() + self.head.weight.numel())


def _measured(fn) -> float:
    mode = FlopCounterMode(display=False)
    with mode:
        fn()
    return float(mode.get_total_flops())


def _train_step(model, x) -> None:
    loss = F.cross_entropy(model(x).flatten(0, 1), torch.roll(x, -1, 1).flatten())
    loss.backward()


def test_a_training_step_is_three_forwards_and_evaluation_is_free() -> None:
    model, x = _Static(), tokens(0, batch=4, seq_len=8)
    counter = FlopCounter().attach(model)
    _train_step(model, x)
    f = model.flops_per_token(8) * x.numel()
    assert counter.dense == 3 * f and counter.gated == counter.dense
    assert counter.by_kind["train"] == 3 * f
    model.eval()
    with torch.no_grad():
        model(x)
    assert counter.dense == 3 * f  # evaluation is not training compute
    model.train()
    with torch.no_grad():
        model(x)
    assert counter.by_kind["probe"] == f  # a probe in training mode is


def test_the_backward_multiplier_matches_the_matmuls_torch_runs() -> None:
    model, x = _Static(), tokens(1, batch=4, seq_len=8)
    forward = _measured(lambda: model(x))
    step = _measured(lambda: _train_step(model, x))
    assert forward == model.flops_per_token(8) * x.numel()  # the formula is exact here
    # both matmuls need their input's and their weight's gradient (the embedding output
    # is trained): exactly 3×
    assert step == 3 * forward


def test_a_network_step_is_charged_no_less_than_torch_runs() -> None:
    net, x = tiny_net(), tokens(6, batch=2, seq_len=8)
    forward = _measured(lambda: net(x))
    step = _measured(lambda: _train_step(net, x))
    assert 0.85 * 3 * forward <= step <= 3 * forward


def test_knockout_is_charged_two_probe_forwards() -> None:
    net, x = tiny_net(), tokens(2, batch=2, seq_len=8)
    counter = FlopCounter().attach(net)

    assert knockout_dloss(net, 3, (x, torch.roll(x, -1, 1))) is not None
    assert counter.by_kind["probe"] == 2 * dense_per_token(net, 8) * x.numel()
    assert counter.by_kind["train"] == 0 and counter.by_kind["monitor"] == 0


def test_edge_gradient_product_is_charged_when_a_capture_runs() -> None:
    net, x = tiny_net(), tokens(3, batch=2, seq_len=8)
    counter = FlopCounter().attach(net)
    out = net.run(x, capture=True)
    F.cross_entropy(out.logits.flatten(0, 1), torch.roll(x, -1, 1).flatten()).backward()
    n, d = net.tissue.num_nodes, net.cfg.d_cell
    assert counter.by_kind["edge_grad"] == 2 * n * n * d * x.numel()
    assert counter.by_kind["train"] == 3 * dense_per_token(net, 8) * x.numel()


def test_the_lyapunov_monitor_is_charged_its_passes_and_agrees_with_torch() -> None:
    net, x = tiny_net(), tokens(4, batch=2, seq_len=12)
    counter = FlopCounter().attach(net)
    emb = net.embed[x].detach()
    window, t0, iters = 4, 6, 3
    measured = _measured(lambda: tissue_lyapunov(net, emb, window, t0=t0, iters=iters))
    tissue_tokens = emb.shape[0] * (t0 + window + 1)  # the monitor drops later positions
    per_forward = (dense_per_token(net, t0 + window + 1) - head_per_token(net)) * tissue_tokens
    assert counter.by_kind["monitor"] == per_forward * (1 + 4 * (iters + 1))
    assert counter.by_kind["train"] == counter.by_kind["probe"] == 0
    one = _measured(lambda: net.run_tissue(emb[:, : t0 + window + 1]))
    counted, ran = counter.by_kind["monitor"] / per_forward, measured / one
    # reverse passes that need no weight gradient cost less than 2 forwards: an upper bound
    assert ran <= counted <= 1.4 * ran


def test_totals_survive_a_state_dict_round_trip_and_detach_restores_the_network() -> None:
    net, x = tiny_net(), tokens(5)
    counter = FlopCounter().attach(net)
    _train_step(net, x)
    again = FlopCounter()
    again.load_state_dict(counter.state_dict())
    assert (again.dense, again.gated, again.by_kind) == (
        counter.dense,
        counter.gated,
        counter.by_kind,
    )
    counter.detach()
    assert "run" not in vars(net) and "run_tissue" not in vars(net)
    _train_step(net, x)
    assert counter.dense == again.dense  # no longer counting

"""Laws of adaptive computation (morpho.halting): ACT weights, the pass budget, ponder cost.

The toy ``step`` is a causal recurrence (a running mean along T), so causality can be
checked exactly; the last test runs the real tissue (``Network.forward_tissue``).
"""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_net, tokens
from torch import Tensor, nn

from morpho.halting import HaltingUnit, adaptive_passes

B, T, D = 2, 6, 4


def causal_step(seed: int = 0) -> nn.Module:
    """(B, T, d) → (B, T, d): ``tanh`` of a running mean of ``x W`` along T."""

    class Step(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            self.w = nn.Parameter(torch.randn(D, D, generator=g) / D**0.5)

        def forward(self, x: Tensor) -> Tensor:
            counts = torch.arange(1, x.shape[1] + 1, dtype=x.dtype).view(1, -1, 1)
            return torch.tanh((x @ self.w).cumsum(1) / counts)

    return Step()


def inputs(seed: int = 1) -> Tensor:
    return torch.randn(B, T, D, generator=torch.Generator().manual_seed(seed))


def constant_halt(logit: float):
    """A halting unit that gives every token the same logit, whatever the state."""
    return lambda state: torch.full(state.shape[:2], logit)


def scripted_halt(hs: list[float]):
    """A halting unit whose pass-n probability is ``hs[n-1]`` for every token."""
    calls = iter(hs)
    return lambda state: torch.full(state.shape[:2], torch.logit(torch.tensor(next(calls))).item())


@pytest.mark.parametrize("max_passes", [1, 2, 5])
def test_weights_are_a_distribution_and_passes_within_budget(max_passes: int) -> None:
    halt = HaltingUnit(D, bias_init=-1.0)
    with torch.no_grad():
        halt.linear.weight.normal_(generator=torch.Generator().manual_seed(0))  # per token
    pond = adaptive_passes(causal_step(), inputs(), halt, max_passes)
    assert pond.weights.shape == (pond.n_passes_run, B, T)
    assert (pond.weights >= 0).all()
    torch.testing.assert_close(pond.weights.sum(0), torch.ones(B, T))
    assert (pond.passes >= 1).all() and (pond.passes <= max_passes).all()
    if max_passes == 5:
        assert len(pond.passes.unique()) > 1  # tokens halt at different passes
    assert pond.n_passes_run == int(pond.passes.max())
    # a token's weights stop at its halting pass
    n = torch.arange(1, pond.n_passes_run + 1).view(-1, 1, 1)
    assert (pond.weights[n > pond.passes] == 0).all()


def test_never_halting_unit_uses_the_whole_budget() -> None:
    step, calls = causal_step(), []

    def counted_step(x: Tensor) -> Tensor:
        calls.append(x)
        return step(x)

    pond = adaptive_passes(counted_step, inputs(), constant_halt(-20.0), 4)
    assert (pond.passes == 4).all() and pond.n_passes_run == 4 and len(calls) == 4
    h = torch.sigmoid(torch.tensor(-20.0))
    torch.testing.assert_close(pond.ponder_cost, 4 + (1 - 3 * h))


def test_always_halting_unit_takes_one_pass_equal_to_step() -> None:
    step, x = causal_step(), inputs()
    pond = adaptive_passes(step, x, constant_halt(20.0), max_passes=5)
    assert pond.n_passes_run == 1 and (pond.passes == 1).all()
    assert torch.equal(pond.output, step(x))
    assert pond.ponder_cost.item() == 2.0  # N = 1, R = 1 − (no earlier h) = 1


def test_one_pass_budget_is_exactly_step_with_cost_two() -> None:
    step, x = causal_step(), inputs()
    pond = adaptive_passes(step, x, HaltingUnit(D, bias_init=-3.0), max_passes=1)
    assert torch.equal(pond.output, step(x))
    assert pond.ponder_cost.item() == 2.0 and (pond.passes == 1).all()


def test_ponder_cost_and_output_match_a_hand_computation() -> None:
    step, x = causal_step(), inputs()
    # h = 0.3, 0.5, 0.9: Σ = 0.3, 0.8, 1.7 ≥ 0.99 at n = 3; R = 1 − 0.8 = 0.2; ρ = 3.2
    pond = adaptive_passes(step, x, scripted_halt([0.3, 0.5, 0.9, 0.9]), max_passes=4)
    assert pond.n_passes_run == 3 and (pond.passes == 3).all()
    torch.testing.assert_close(pond.ponder_cost, torch.tensor(3.2))
    s1 = step(x)
    s2 = step(x + s1)
    s3 = step(x + s2)
    torch.testing.assert_close(pond.output, 0.3 * s1 + 0.5 * s2 + 0.2 * s3)
    torch.testing.assert_close(pond.weights[:, 0, 0], torch.tensor([0.3, 0.5, 0.2]))


def test_eps_lets_a_nearly_sure_token_halt_early() -> None:
    pond = adaptive_passes(causal_step(), inputs(), scripted_halt([0.95, 0.5]), 3, eps=0.1)
    assert pond.n_passes_run == 1
    pond = adaptive_passes(causal_step(), inputs(), scripted_halt([0.95, 0.5]), 3, eps=0.01)
    assert pond.n_passes_run == 2 and pond.weights[:, 0, 0].tolist() == pytest.approx([0.95, 0.05])


def test_ponder_cost_gradient_reaches_the_halting_unit() -> None:
    halt = HaltingUnit(D, bias_init=-1.0)  # h ≈ 0.27: several passes, so R depends on h
    with torch.no_grad():
        halt.linear.weight.normal_(generator=torch.Generator().manual_seed(0))
    pond = adaptive_passes(causal_step(), inputs(), halt, max_passes=4)
    assert pond.n_passes_run > 1
    pond.ponder_cost.backward()
    assert halt.linear.bias.grad is not None and halt.linear.bias.grad.item() < 0  # ρ falls as h
    assert halt.linear.weight.grad is not None and halt.linear.weight.grad.abs().sum() > 0


def test_output_is_causal_along_the_sequence() -> None:
    halt = HaltingUnit(D, bias_init=-1.0)
    with torch.no_grad():
        halt.linear.weight.normal_(generator=torch.Generator().manual_seed(2))
    step, x = causal_step(), inputs()
    t = 3
    x2 = x.clone()
    x2[:, t:] += 5 * torch.randn(B, T - t, D)
    a, b = adaptive_passes(step, x, halt, 6), adaptive_passes(step, x2, halt, 6)
    torch.testing.assert_close(a.output[:, :t], b.output[:, :t], rtol=0, atol=0)
    assert torch.equal(a.passes[:, :t], b.passes[:, :t])
    assert not torch.allclose(a.output[:, t:], b.output[:, t:])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_passes": 0}, "max_passes must be an int >= 1; got 0"),
        ({"max_passes": 2.0}, "max_passes must be an int >= 1"),
        ({"eps": 0.0}, r"eps must be in \(0, 1\); got 0.0"),
        ({"eps": 1.0}, r"eps must be in \(0, 1\)"),
        ({"x": torch.zeros(B, T)}, r"x must be a \(B, T, d\) float tensor; got \(2, 6\)"),
        ({"step": lambda x: x[..., :2]}, r"step must return \(B, T, d\) = \(2, 6, 4\)"),
        ({"halt_logit": lambda s: s[..., :1]}, r"halt_logit must return \(B, T\) = \(2, 6\)"),
    ],
)
def test_bad_arguments_raise_one_line_errors(kwargs: dict, message: str) -> None:
    args = {"step": causal_step(), "x": inputs(), "halt_logit": HaltingUnit(D), "max_passes": 2}
    with pytest.raises(ValueError, match=message) as info:
        adaptive_passes(**{**args, **kwargs})
    assert "\n" not in str(info.value)


def test_real_tissue_runs_within_budget_and_is_causal() -> None:
    net = tiny_net()
    x = tokens(0)
    halt = HaltingUnit(net.cfg.d_cell, bias_init=-2.0)  # h ≈ 0.12: the budget binds
    pond = adaptive_passes(net.forward_tissue, net.embed[x], halt, max_passes=3)
    assert pond.output.shape == (*x.shape, net.cfg.d_cell)
    assert (pond.passes == 3).all() and pond.n_passes_run == 3
    torch.testing.assert_close(pond.weights.sum(0), torch.ones(x.shape))
    (net.head_logits(pond.output).pow(2).mean() + 0.01 * pond.ponder_cost).backward()
    assert halt.linear.bias.grad is not None and net.embed.grad is not None
    x2 = x.clone()
    x2[:, 5:] = (x2[:, 5:] + 1) % net.cfg.vocab_size
    with torch.no_grad():
        other = adaptive_passes(net.forward_tissue, net.embed[x2], halt, max_passes=3)
    torch.testing.assert_close(other.output[:, :5], pond.output[:, :5].detach())


def test_without_early_exit_the_budget_runs_and_nothing_else_changes() -> None:
    """``early_exit=False`` (sync-free training): every pass runs, halted tokens weigh 0 in
    the extra ones, so output, cost, passes and gradients are those of the early exit."""
    step, x = causal_step(), inputs()
    halt = HaltingUnit(D, bias_init=3.0)  # most tokens halt at pass 1, all by pass 2
    early = adaptive_passes(step, x, halt, max_passes=4)
    full = adaptive_passes(step, x, halt, max_passes=4, early_exit=False)
    assert early.n_passes_run < 4 and full.n_passes_run == 4
    torch.testing.assert_close(full.output, early.output, rtol=0, atol=0)
    torch.testing.assert_close(full.ponder_cost, early.ponder_cost, rtol=0, atol=0)
    assert torch.equal(full.passes, early.passes)
    assert torch.equal(full.weights[: early.n_passes_run], early.weights)
    assert not full.weights[early.n_passes_run :].any()
    g_early = torch.autograd.grad(early.output.sum() + early.ponder_cost, list(step.parameters()))
    g_full = torch.autograd.grad(full.output.sum() + full.ponder_cost, list(step.parameters()))
    for a, b in zip(g_full, g_early, strict=True):
        torch.testing.assert_close(a, b)

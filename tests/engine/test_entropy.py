"""KNIFE entropy: agrees with closed forms and a numerically integrated mixture, is exactly
equivariant (h(cX + b) = h(X) + d log c) with that law in its gradient, batches cells
without coupling them, and feeds the ``repr_entropy`` energy term of a real network."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_net, tokens

from morpho.energy import free_energy
from morpho.entropy import knife_entropy, representation_entropy


def gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def gaussian(d: int, S: int, n: int = 1, seed: int = 0) -> tuple[torch.Tensor, float]:
    """``n`` sets of ``S`` samples of N(0, Σ), Σ a random full covariance; and h = ½ log|2πeΣ|."""
    g = gen(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    cov = a @ a.T / d + 0.3 * torch.eye(d, dtype=torch.float64)  # correlated, well conditioned
    x = torch.randn(n, S, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    return x.float(), 0.5 * (d * math.log(2 * math.pi * math.e) + torch.logdet(cov).item())


@pytest.mark.parametrize("d", [1, 2, 8])
def test_gaussian_entropy_matches_the_closed_form(d: int) -> None:
    S = 4000
    x, h = gaussian(d, S, seed=d)
    err = knife_entropy(x, generator=gen()).item() - h
    # below: only held-out noise, 3 std of −log p̂ (variance d/2 for a Gaussian) over S/2;
    # above: that, or the fit's excess (an upper bound); 0.05·d + 0.05 nats holds both
    # (measured here: +0.012, +0.011, +0.161 for d = 1, 2, 8; over 5 seeds −0.06 to +0.21)
    assert -3 * math.sqrt(d / 2 / (S // 2)) < err < 0.05 * d + 0.05


def test_two_component_mixture_matches_numerical_integration() -> None:
    g = gen(5)
    S = 4000
    wide = torch.rand(1, S, 1, generator=g) < 0.5
    x = torch.where(
        wide, -4 + torch.randn(1, S, 1, generator=g), 4 + 0.5 * torch.randn(1, S, 1, generator=g)
    )
    t = torch.linspace(-15, 15, 300_001, dtype=torch.float64)
    p = 0.5 * (torch.exp(-0.5 * (t + 4) ** 2) + torch.exp(-2 * (t - 4) ** 2) / 0.5)
    p = p / math.sqrt(2 * math.pi)
    h = torch.trapezoid(-p * p.log(), t).item()  # ≈ log 2 + ½(h₁ + h₂): separated components
    mixture = knife_entropy(x, generator=gen()).item()
    one_gaussian = knife_entropy(x, n_kernels=1, generator=gen()).item()
    assert abs(mixture - h) < 0.08  # noise: std of log p̂ ≈ 0.8 over 2000 samples, 0.02
    assert one_gaussian > h + 0.5  # a single kernel cannot fit it: the bound is loose


def test_cells_are_estimated_independently_of_their_batch() -> None:
    g = gen(3)
    x = torch.randn(5, 64, 3, generator=g) * torch.tensor([0.1, 1, 3, 10, 0.5]).view(5, 1, 1)
    together = knife_entropy(x, generator=gen(7))
    alone = torch.cat([knife_entropy(x[i : i + 1], generator=gen(7)) for i in range(5)])
    assert torch.allclose(together, alone, atol=1e-4)
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert torch.allclose(knife_entropy(x[perm], generator=gen(7)), together[perm], atol=1e-4)
    assert together.argsort().tolist() == [0, 4, 1, 2, 3]  # wider cells, more entropy


def test_scaling_by_c_adds_d_log_c_in_value_and_gradient() -> None:
    d = 4
    x, _ = gaussian(d, 200, n=2)
    base = knife_entropy(x, generator=gen())
    shifted = knife_entropy(3.0 * x + 5.0, generator=gen())
    assert torch.allclose(shifted, base + d * math.log(3.0), atol=1e-3)
    c = torch.ones((), requires_grad=True)
    knife_entropy(c * x, generator=gen()).sum().backward()
    assert c.grad is not None and c.grad.item() == pytest.approx(2 * d, abs=1e-3)  # Σ_cells d


def test_gradient_wrt_samples_raises_the_estimate() -> None:
    x, _ = gaussian(2, 200, n=3)
    x.requires_grad_()
    h = knife_entropy(x, generator=gen())
    h.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.no_grad():
        stepped = knife_entropy(x + 0.5 * x.grad, generator=gen())  # also runs under no_grad
    assert (stepped > h.detach()).all()


def test_dead_and_degenerate_sets_give_finite_low_entropy() -> None:
    x, _ = gaussian(3, 64, n=2)
    x[1, :, 2] = 0.7  # a dead channel: h = −∞ in truth, very low here
    dead = torch.zeros(1, 64, 3)
    h = torch.cat([knife_entropy(x, generator=gen()), knife_entropy(dead, generator=gen())])
    assert torch.isfinite(h).all()
    assert h[0] > h[1] + 5 and h[1] > h[2] + 5


def test_representation_entropy_of_a_network_in_row_order() -> None:
    net = tiny_net()
    out = net.run(tokens(0, batch=4, seq_len=16), capture=True)
    outputs = out.captured[0].outputs  # per level (n_l, 4, 16, 8)
    N = net.tissue.num_nodes
    h = representation_entropy(outputs, generator=gen())
    assert h.shape == (N,) and torch.isfinite(h).all()
    rows = torch.cat([y.flatten(1, 2) for y in outputs])  # (N, 64, 8): 64 <= max_samples
    for r in (0, N // 2, N - 1):
        assert h[r].item() == pytest.approx(
            knife_entropy(rows[r : r + 1], generator=gen()).item(), abs=1e-4
        )
    assert representation_entropy(outputs, max_samples=32, generator=gen()).shape == (N,)

    stats = {**out.stats, "repr_entropy": h}
    assert torch.allclose(free_energy(stats, {"repr_entropy": 1.0}), h)
    f = free_energy(stats, {"internal": 1.0, "repr_entropy": -0.1})  # F = U − τS
    assert torch.allclose(f, out.stats["surprise"] - 0.1 * h)
    with pytest.raises(ValueError, match="needs statistic 'repr_entropy'"):
        free_energy(out.stats, {"repr_entropy": 1.0})


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: knife_entropy(torch.randn(10, 3)), r"samples must be \(n, S, d\); got shape"),
        (lambda: knife_entropy(torch.randn(2, 3, 4)), "need S >= 4 samples .* got S=3"),
        (lambda: knife_entropy(torch.randn(2, 8, 4), holdout=1.0), "holdout must leave"),
        (lambda: knife_entropy(torch.randn(2, 5, 4), holdout=0.1), "holdout must leave"),
        (lambda: knife_entropy(torch.randn(2, 8, 4), n_kernels=0), "need n_kernels >= 1"),
        (lambda: representation_entropy([]), "non-empty list of"),
        (lambda: representation_entropy([torch.randn(2, 8, 4)]), r"\(n, B, T, d\)"),
        (
            lambda: representation_entropy([torch.randn(2, 2, 8, 4), torch.randn(1, 2, 4, 4)]),
            "every level must have the same",
        ),
    ],
)
def test_bad_inputs_say_what_was_expected(call, message: str) -> None:
    with pytest.raises(ValueError, match=message) as e:
        call()
    assert "\n" not in str(e.value)

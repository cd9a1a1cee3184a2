"""Laws of the cell kernels: the FFT recurrence and its hand-written backward, bank matmuls.

The recurrence ``h_t = a h_{t-1} + u_t`` is checked against a plain loop over time; its
custom gradient against finite differences (``gradcheck`` in double precision) and against
autograd through the reference FFT ops, including the double backward that
:mod:`morpho.criticality` takes (``create_graph``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from morpho.cells import bank_matmul
from morpho.cells_thermo import fft_recurrence, linear_recurrence


def loop_recurrence(u: Tensor, log_a: Tensor) -> Tensor:
    a = log_a.exp()[:, None, :]  # (n, 1, d)
    h, out = torch.zeros_like(u[:, :, 0]), []
    for t in range(u.shape[2]):
        h = a * h + u[:, :, t]
        out.append(h)
    return torch.stack(out, 2)


def inputs(n: int = 3, B: int = 2, T: int = 9, d: int = 4, dtype=torch.float64):  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(n, B, T, d, generator=gen, dtype=dtype).requires_grad_()
    log_a = F.logsigmoid(torch.randn(n, d, generator=gen, dtype=dtype) * 2).requires_grad_()
    return u, log_a


def test_recurrence_equals_the_loop_over_time() -> None:
    u, log_a = inputs(dtype=torch.float32)
    torch.testing.assert_close(
        linear_recurrence(u, log_a), loop_recurrence(u, log_a), rtol=1e-5, atol=1e-5
    )


def test_recurrence_backward_passes_gradcheck() -> None:
    u, log_a = inputs()
    assert torch.autograd.gradcheck(linear_recurrence, (u, log_a))
    # one input at a time: the other's gradient is skipped, not wrong
    assert torch.autograd.gradcheck(lambda x: linear_recurrence(x, log_a.detach()), (u,))
    assert torch.autograd.gradcheck(lambda la: linear_recurrence(u.detach(), la), (log_a,))


def test_recurrence_backward_equals_autograd_through_the_reference() -> None:
    u, log_a = inputs(n=2, B=3, T=64, d=8, dtype=torch.float32)
    probe = torch.randn(u.shape, generator=torch.Generator().manual_seed(1))
    ours = torch.autograd.grad((linear_recurrence(u, log_a) * probe).sum(), (u, log_a))
    ref = torch.autograd.grad((fft_recurrence(u, log_a) * probe).sum(), (u, log_a))
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_recurrence_double_backward_is_exact() -> None:
    """J v by the double-vjp trick, then its gradient w.r.t. the decays (the criticality
    regulariser's path): equal to the reference's, and to finite differences."""

    def jvp_then_grad(fn) -> tuple[Tensor, Tensor]:  # type: ignore[no-untyped-def]
        u, log_a = inputs()
        out = fn(u, log_a)
        cot = torch.zeros_like(out, requires_grad=True)
        (pull,) = torch.autograd.grad(out, u, cot, create_graph=True)  # Jᵀ cot
        v = torch.ones_like(u)
        (jv,) = torch.autograd.grad(pull, cot, v, create_graph=True)  # J v
        return jv, torch.autograd.grad(jv.pow(2).sum(), log_a)[0]

    for ours, ref in zip(
        jvp_then_grad(linear_recurrence), jvp_then_grad(fft_recurrence), strict=True
    ):
        torch.testing.assert_close(ours, ref)
    u, log_a = inputs()
    assert torch.autograd.gradgradcheck(linear_recurrence, (u, log_a))


def test_recurrence_without_grad_skips_the_custom_function() -> None:
    u, log_a = inputs(dtype=torch.float32)
    with torch.no_grad():
        out = linear_recurrence(u, log_a)
    assert out.grad_fn is None
    torch.testing.assert_close(out, fft_recurrence(u, log_a).detach())


def test_bank_matmul_is_a_per_cell_matmul_plus_addend() -> None:
    gen = torch.Generator().manual_seed(2)
    x, w = torch.randn(3, 2, 5, 4, generator=gen), torch.randn(3, 4, 6, generator=gen)
    add = torch.randn(3, 2, 5, 6, generator=gen)
    want = torch.stack([x[c] @ w[c] for c in range(3)])
    torch.testing.assert_close(bank_matmul(x, w), want)
    torch.testing.assert_close(bank_matmul(x, w, add=add), want + add)
    # non-contiguous inputs (a permuted state, a slice of a bank) are handled
    xt = x.transpose(1, 2).contiguous().transpose(1, 2)
    torch.testing.assert_close(bank_matmul(xt, w[..., :3]), want[..., :3])


def test_recurrence_under_torch_func_transforms() -> None:
    """Forward mode (``torch.func.jvp``, as in ``benettin_lyapunov``), reverse over forward,
    and ``vmap`` see the same function as the plain reference."""
    u, log_a = inputs(dtype=torch.float32)
    v = torch.randn(u.shape, generator=torch.Generator().manual_seed(3))
    out, tangent = torch.func.jvp(lambda x: linear_recurrence(x, log_a), (u,), (v,))
    _, ref_tangent = torch.func.jvp(lambda x: fft_recurrence(x, log_a), (u,), (v,))
    torch.testing.assert_close(tangent, ref_tangent)
    torch.testing.assert_close(tangent, loop_recurrence(v, log_a.detach()), rtol=1e-4, atol=1e-4)
    (grad,) = torch.autograd.grad(tangent.pow(2).sum(), log_a)  # reverse over forward
    (ref,) = torch.autograd.grad(ref_tangent.pow(2).sum(), log_a)
    torch.testing.assert_close(grad, ref)
    stacked = u[None].expand(2, -1, -1, -1, -1)
    batched = torch.func.vmap(linear_recurrence, in_dims=(0, None))(stacked, log_a)
    torch.testing.assert_close(batched[1], fft_recurrence(u, log_a))


def test_rms_norm_second_derivative_is_finite_on_a_zero_row() -> None:
    """A cell no edge reaches gets an all-zero input; the criticality regulariser takes a
    double backward through its norm."""
    from morpho.cells import rms_norm

    x = torch.zeros(2, 4, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(rms_norm(x).sum() + rms_norm(x2).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.pow(2).sum(), x)
    assert torch.isfinite(g).all() and torch.isfinite(gg).all()
    assert torch.autograd.gradgradcheck(rms_norm, (x2,))

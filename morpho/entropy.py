"""Differential entropy of cell representations: a batched KNIFE kernel estimator.

KNIFE (Pichler et al., 2022, "A Differential Entropy Estimator for Training Neural
Networks", https://arxiv.org/abs/2202.06618) fits a mixture of ``M`` Gaussian kernels
``p̂(x) = Σ_m w_m N(x; μ_m, Σ_m)`` to samples by maximum likelihood and reads the entropy
as the cross-entropy ``−mean_i log p̂(x_i)`` on held-out samples: an upper bound on
``h(X)`` (in expectation) that tightens as the fit improves, and a differentiable
function of the samples, so it can be logged or used as the ``S`` term of a loss::

    outputs = net.captured["outputs"]               # per level (n_l, B, T, d)
    stats["repr_entropy"] = representation_entropy(outputs)   # (N,) nats, row order
    F = free_energy(stats, {"internal": 1.0, "repr_entropy": -tau})

Every cell gets its own mixture, and all of them are fitted at once (batched tensors, one
Adam over the stacked parameters; no loop over cells). The random draws (the held-out
split, the samples the means start at) depend only on ``(S, M)`` and are shared by every
cell, so a cell's estimate does not depend on which other cells it is batched with.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

MIN_SAMPLES = 4  # at least two to fit and two to evaluate


def knife_entropy(
    samples: Tensor,
    n_kernels: int = 16,
    steps: int = 100,
    lr: float = 0.05,
    generator: torch.Generator | None = None,
    holdout: float = 0.5,
) -> Tensor:
    """KNIFE estimate of the differential entropy of each of ``n`` sample sets, in nats.

    Each set is first standardised per channel with the mean and std of its fit half
    (``h(X) = h(Z) + Σ_j log σ_j``), which makes the fit scale-free (one ``lr`` for any
    data) and the estimate exactly equivariant: ``h(cX) = h(X) + d log c``. In ``Z`` the
    kernels start as a kernel density estimate (see :func:`_init_kernels`) and Adam
    maximises the fit half's likelihood for ``steps`` steps, the parameters detached from
    ``samples``. The estimate is the held-out cross-entropy; its gradient reaches the
    held-out samples through the log-density and every sample through the standardisation.

    Covariance: full, through lower-triangular precision factors with positive diagonal,
    ``Σ_m⁻¹ = A_mᵀA_m`` with ``A_m = D_m (I + L)``: a per-kernel positive diagonal ``D_m``
    (``exp`` of a parameter) and a strictly lower ``L`` *shared* by the kernels (KNIFE's
    form with its triangle tied), so ``log|A_m| = Σ log D_m`` and no solve is needed.
    Tying costs ``S·d² + S·M·d`` per cell instead of ``S·M·d²``, and it is what keeps the
    fit honest at a cell's sample sizes: fitting 16 kernels to 128 samples of a 32-dim
    Gaussian overshot its entropy by 500–700 nats with a triangle per kernel, by 12–16
    tied, and by 2.4–4.3 with one Gaussian (the floor of a 32-dim covariance estimated from
    128 samples). For the same reason ``M`` is capped at ``S_fit // (2d)``: on average one
    fit sample per parameter of a kernel's mean and scales (here: 2 kernels, +4–5.7 nats).

    Args:
        samples: ``n`` independent sets of ``S`` samples each.
        n_kernels: mixture components ``M`` (at most ``max(1, S_fit // (2d))``).
        steps: Adam steps of the maximum-likelihood fit.
        lr: Adam learning rate, in standardised units.
        generator: drives the split and the kernel starts (shared by all cells).
        holdout: share of each set kept out of the fit to evaluate on; 0 fits and
            evaluates on all samples (lower variance, no longer an upper bound).

    Returns:
        (n,) entropy estimates in nats, differentiable with respect to ``samples``.

    Shapes:
        samples: (n, S, d) with ``S >= 4``; returns (n,).

    Raises:
        ValueError: a wrong shape, too few samples, or a bad ``n_kernels``, ``steps`` or
            ``holdout``.
    """
    n, S, d = _check(samples, n_kernels, steps, holdout)
    x = samples if samples.dtype == torch.float64 else samples.float()
    n_eval = round(S * holdout)
    perm = torch.randperm(S, generator=generator).to(x.device)
    fit, held = (x[:, perm[n_eval:]], x[:, perm[:n_eval]]) if n_eval else (x, x)
    mean = fit.mean(1, keepdim=True)  # (n, 1, d)
    var = fit.var(1, keepdim=True)
    std = (var + 1e-6 * var.mean(-1, keepdim=True) + 1e-30).sqrt()  # floor: dead channels
    M = max(1, min(n_kernels, fit.shape[1] // (2 * d)))
    starts = torch.randperm(fit.shape[1], generator=generator)[:M].to(x.device)
    with torch.inference_mode(False), torch.enable_grad():  # callers may log under no_grad
        z_fit = ((fit - mean) / std).detach().clone()  # (n, S_fit, d)
        params = _init_kernels(z_fit, starts)
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(steps):
            loss = -_log_density(z_fit, *params).mean(1).sum()  # sum: cells stay independent
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    kernels = [p.detach() for p in params]
    log_p = _log_density((held - mean) / std, *kernels)  # (n, S_eval)
    return std.log().sum((1, 2)) - log_p.mean(1)


def representation_entropy(
    outputs: list[Tensor],
    max_samples: int = 256,
    generator: torch.Generator | None = None,
    **kw: object,
) -> Tensor:
    """KNIFE entropy of every cell's output token vectors (see :func:`knife_entropy`).

    Token vectors of one cell are treated as samples of its representation; up to
    ``max_samples`` of the ``B·T`` tokens are drawn at random (the same tokens for every
    cell). Tokens of one sequence are correlated, so the estimate is of the marginal
    distribution of a cell's state, not of an i.i.d. law.

    Args:
        outputs: per-level cell outputs, as kept in ``Network.captured["outputs"]``.
        max_samples: most token vectors per cell.
        generator: drives the token draw and the estimator.
        **kw: passed to :func:`knife_entropy` (``n_kernels``, ``steps``, ``lr``, …).

    Returns:
        (N,) entropies in nats, in cell row order (levels concatenated).

    Shapes:
        outputs: list of (n_l, B, T, d), the same ``B, T, d`` at every level; returns (N,).
    """
    if not outputs or any(y.dim() != 4 for y in outputs):
        got = [tuple(y.shape) for y in outputs]
        raise ValueError(f"outputs must be a non-empty list of (n, B, T, d) tensors; got {got}")
    if len({y.shape[1:] for y in outputs}) > 1:
        got = [tuple(y.shape) for y in outputs]
        raise ValueError(f"every level must have the same (B, T, d); got {got}")
    tokens = torch.cat([y.flatten(1, 2) for y in outputs])  # (N, B*T, d)
    if tokens.shape[1] > max_samples:
        pick = torch.randperm(tokens.shape[1], generator=generator)[:max_samples]
        tokens = tokens[:, pick.to(tokens.device)]
    return knife_entropy(tokens, generator=generator, **kw)  # type: ignore[arg-type]


def _check(samples: Tensor, n_kernels: int, steps: int, holdout: float) -> tuple[int, int, int]:
    if samples.dim() != 3:
        raise ValueError(f"samples must be (n, S, d); got shape {tuple(samples.shape)}")
    n, S, d = samples.shape
    if n_kernels < 1 or steps < 0:
        raise ValueError(f"need n_kernels >= 1 and steps >= 0; got {n_kernels}, {steps}")
    if S < MIN_SAMPLES or d < 1:
        raise ValueError(
            f"need S >= {MIN_SAMPLES} samples of d >= 1 dims per set; got S={S}, d={d}"
        )
    n_eval = round(S * holdout)
    if not 0 <= holdout < 1 or (holdout and n_eval < 2) or S - n_eval < 2:
        raise ValueError(
            f"holdout must leave >= 2 samples to fit and to evaluate (or be 0); "
            f"got holdout={holdout} with S={S}"
        )
    return n, S, d


def _init_kernels(z: Tensor, starts: Tensor) -> list[Tensor]:
    """Leaf parameters ``[μ (n,M,d), log D (n,M,d), weight logits (n,M), L (n,d,d)]``.

    A variance-matched kernel density estimate of the fit samples ``z`` (unit variances):
    every kernel has the data's correlation ``C = corr(Z)`` shrunk by Silverman's
    bandwidth ``b² = (4 / (M (d+2)))^{2/(d+4)}`` (at most 1) — ``D (I + L) = L_C⁻¹ / b`` with
    ``C = L_C L_Cᵀ`` — and sits at a sample ``z_s`` shrunk to ``√(1−b²) z_s``, so the
    mixture's covariance is ``C``, not ``(1+b²) C``; weights start equal.
    """
    n, S, d = z.shape
    M = len(starts)
    b2 = min(1.0, (4 / (M * (d + 2))) ** (2 / (d + 4)))  # one kernel: b = 1, at the mean
    eye = torch.eye(d, dtype=z.dtype, device=z.device)
    corr = z.transpose(1, 2) @ z / (S - 1)  # (n, d, d)
    chol = torch.linalg.cholesky(corr + 1e-3 * eye)  # the ridge keeps dead channels PD
    factor = torch.linalg.solve_triangular(chol, eye.expand(n, d, d), upper=False)
    diag = factor.diagonal(dim1=-2, dim2=-1)  # (n, d) > 0
    params = [
        math.sqrt(1 - b2) * z[:, starts],
        (diag.log() - 0.5 * math.log(b2))[:, None].repeat(1, M, 1),
        z.new_zeros(n, M),
        torch.tril(factor / diag[..., None], diagonal=-1),
    ]
    return [p.requires_grad_() for p in params]


def _log_density(z: Tensor, mu: Tensor, log_d: Tensor, logits: Tensor, tril: Tensor) -> Tensor:
    """``log Σ_m w_m N(z; μ_m, (A_mᵀA_m)⁻¹)`` per sample, ``A_m = diag(e^{log_d_m}) (I + L)``.

    Shapes:
        z: (n, S, d); mu, log_d: (n, M, d); logits: (n, M); tril: (n, d, d); returns (n, S).
    """
    d = z.shape[-1]
    unit = torch.tril(tril, diagonal=-1) + torch.eye(d, dtype=z.dtype, device=z.device)
    unit_t = unit.transpose(1, 2)  # (n, d, d)
    u = ((z @ unit_t)[:, :, None] - (mu @ unit_t)[:, None]) * log_d.exp()[:, None]  # (n,S,M,d)
    log_k = log_d.sum(-1)[:, None] - 0.5 * u.pow(2).sum(-1)  # (n, S, M)
    log_k = log_k + torch.log_softmax(logits, -1)[:, None]
    return torch.logsumexp(log_k, -1) - 0.5 * d * math.log(2 * math.pi)

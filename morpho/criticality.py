"""Edge-of-chaos monitors: Lyapunov exponents of maps and of the tissue, and its path norm.

A network near criticality neither forgets a perturbation at once (exponent ≪ 0) nor
blows it up (exponent > 0). Three measures, all cheap next to a training step:

    lam = benettin_lyapunov(step, h0, steps=500)           # map h_{t+1} = step(h_t): float
    lam = tissue_lyapunov(net, emb, window=16)             # ∂out[t0+τ]/∂in[t0] of the tissue
    reg = delta * (tissue_lyapunov(net, emb, 16, differentiable=True) - target).clamp(min=0) ** 2
    p = path_norm(net)                                     # Σ_paths Π|strength| · |readout|

How the Jacobians are taken. :func:`benettin_lyapunov` pushes its tangent with
``torch.func.jvp``. :func:`sequence_lyapunov` needs ``J v`` and ``Jᵀ w`` many times at one
point, so it runs ``fn`` once and builds ``g(c) = Jᵀ c`` with ``create_graph``; then
``Jᵀ w`` is a plain backward and ``J v = ∂⟨g(c), v⟩/∂c`` a double backward (the
"double-vjp trick"), both reusing the stored graph. On the small preset that is ~3× cheaper
than ``torch.func.jvp`` + ``vjp``: forward-mode AD costs 4–8 forwards per call in eager
torch. Both routes give the same numbers and gradients; the tests check the differentiable
exponent of the tissue against finite differences, and ``torch.func.jvp`` (forward mode,
and reverse over forward) works through the cell kernels (``tests/engine/test_kernels.py``).

The fused scaled-dot-product-attention kernels have neither a forward-mode derivative nor a
differentiable backward, so all of this runs with SDPA on its MATH backend (same numbers up
to float rounding; ``torch.nn.attention.sdpa_kernel``, torch ≥ 2.3, a process-wide setting
while it runs). ``fn`` must be twice differentiable in reverse mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import jvp
from torch.nn.attention import SDPBackend, sdpa_kernel

from morpho.network import Network
from morpho.output import Output
from morpho.tissue import INPUT, OUTPUT


def _math_attention():  # type: ignore[no-untyped-def]
    """Context in which attention has forward-mode and double-backward derivatives."""
    return sdpa_kernel(SDPBackend.MATH)


def _unit(v: Tensor, dims: tuple[int, ...]) -> Tensor:
    """``v`` divided by its norm over ``dims`` (a zero vector stays zero)."""
    norm = v.pow(2).sum(dims, keepdim=True).sqrt()
    return v / norm.clamp(min=torch.finfo(v.dtype).tiny)


def _log_norm(v: Tensor, dims: tuple[int, ...]) -> Tensor:
    """``log ‖v‖`` over ``dims``, floored at the smallest normal float (no ``-inf``)."""
    return v.pow(2).sum(dims).clamp(min=torch.finfo(v.dtype).tiny).log() / 2


def _noise(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=device).to(like)


def benettin_lyapunov(
    step: Callable[[Tensor], Tensor],
    h0: Tensor,
    steps: int,
    warmup: int = 0,
    generator: torch.Generator | None = None,
) -> float:
    """Largest Lyapunov exponent of the map ``h_{t+1} = step(h_t)`` (Benettin et al., 1980).

    A tangent vector ``v`` rides along the orbit, ``v ← J(h_t) v`` by a ``jvp``, and is
    renormalised every step; the exponent is the mean of ``log ‖J(h_t) v_t‖`` over ``steps``
    after ``warmup`` steps that only align ``v`` (and move ``h`` onto the attractor). For a
    linear map ``step(h) = A @ h`` it converges to ``log ρ(A)``, the spectral radius.

    Args:
        step: the map; a pure function of one tensor, differentiable by ``torch.func``.
        h0: initial state; any shape.
        steps: steps averaged (>= 1).
        warmup: steps run first, not averaged (>= 0).
        generator: seeds the initial tangent vector.

    Returns:
        The exponent per step, in nats.

    Shapes:
        h0: any; ``step`` maps that shape to itself.
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"need steps >= 1 and warmup >= 0; got steps={steps}, warmup={warmup}")
    dims = tuple(range(h0.dim()))
    h = h0.detach()
    v = _unit(_noise(tuple(h.shape), h, generator), dims)
    total = 0.0
    with torch.no_grad(), _math_attention():
        for t in range(warmup + steps):
            h, jv = jvp(step, (h,), (v,))  # type: ignore[misc]  # (primal, tangent)
            if t >= warmup:
                total += float(_log_norm(jv, dims))
            v = _unit(jv, dims)
    return total / steps


def _check_window(inputs: Tensor, window: int, t0: int, iters: int) -> None:
    if inputs.dim() != 3:
        raise ValueError(f"inputs must be (B, T, d); got shape {tuple(inputs.shape)}")
    T = inputs.shape[1]
    if window < 1:
        raise ValueError(f"window must be >= 1; got {window}")
    if t0 < 0 or t0 + window >= T:
        raise ValueError(f"need 0 <= t0 and t0 + window < T={T}; got t0={t0}, window={window}")
    if iters < 1:
        raise ValueError(f"iters must be >= 1; got {iters}")


def sequence_lyapunov(
    fn: Callable[[Tensor], Tensor],
    inputs: Tensor,
    window: int,
    t0: int = 0,
    iters: int = 8,
    generator: torch.Generator | None = None,
    differentiable: bool = False,
) -> Tensor:
    """Finite-time Lyapunov exponent of a causal sequence map, averaged over sequences.

    For each sequence ``b``, ``J_b = ∂out[b, t0+window] / ∂in[b, t0]`` (d × d: a perturbation
    placed only at position ``t0``, read ``window`` positions later) and
    ``Λ_b = log σ_max(J_b) / window``. ``σ_max`` comes from ``iters`` steps of power
    iteration on ``J_bᵀ J_b`` — each one ``J v`` and one ``Jᵀ w`` (see the module docstring)
    for all sequences at once; ``J`` is block-diagonal over ``b``, so ``v`` is normalised per
    sequence — then ``σ = ‖J v‖``. For ``y_t = A y_{t-1} + x_t`` with normal ``A``,
    ``Λ = log ρ(A)`` for any window; for non-normal ``A`` it tends to ``log ρ(A)`` from above
    as the window grows (Gelfand's formula).

    ``fn`` must be causal: inputs after ``t0 + window`` cannot change ``out[t0 + window]``,
    so they are dropped. ``σ`` is floored at the smallest normal float (``Λ`` stays finite).
    Cost: one forward, one backward building ``Jᵀ c``, ``iters`` single + double backwards.

    Args:
        fn: the map, ``(B, T', d) -> (B, T', d)`` for any ``T' <= T``, e.g.
            ``Network.forward_tissue`` (use :func:`tissue_lyapunov` for a network).
        inputs: the sequences the Jacobian is taken at.
        window: distance ``τ >= 1`` between perturbation and read-out.
        t0: position of the perturbation; ``t0 + window < T``.
        iters: power-iteration steps.
        generator: seeds the start vectors.
        differentiable: keep the graph to the parameters of ``fn`` (not to ``inputs``): the
            converged direction ``v`` is fixed (detached) and the last ``‖J v‖`` taken with
            ``create_graph``, so its gradient is that of ``σ_max`` (``v`` is stationary
            there). A loss on it backpropagates through the double backward.

    Returns:
        ``mean_b Λ_b``, a scalar tensor (detached unless ``differentiable``).

    Shapes:
        inputs: (B, T, d); out[:, t] and in[:, t]: (B, d) each.
    """
    _check_window(inputs, window, t0, iters)
    t1 = t0 + window
    x = inputs[:, : t1 + 1].detach()  # (B, t1+1, d): a causal fn never looks further
    rows = (1,)  # normalise each sequence's direction over its channels

    def at(position: int, w: Tensor) -> Tensor:  # (B, d) -> (B, t1+1, d), zero elsewhere
        full = torch.zeros_like(x)
        full[:, position] = w
        return full

    with _math_attention(), torch.enable_grad():
        x.requires_grad_()
        out = fn(x)
        cot = torch.zeros_like(out, requires_grad=True)
        (pull,) = torch.autograd.grad(out, x, cot, create_graph=True)  # Jᵀ cot, linear in cot

        def push(v: Tensor, create_graph: bool = False) -> Tensor:  # J v by the double vjp
            u = at(t0, v)
            return torch.autograd.grad(pull, cot, u, retain_graph=True, create_graph=create_graph)[
                0
            ][:, t1]

        v = _unit(_noise((x.shape[0], x.shape[2]), x, generator), rows)  # (B, d)
        for _ in range(iters):
            jtjv = torch.autograd.grad(out, x, at(t1, push(v)), retain_graph=True)[0]
            v = _unit(jtjv[:, t0], rows)
        lam = _log_norm(push(v, create_graph=differentiable), rows).mean() / window
    return lam


@dataclass(frozen=True)
class LyapunovProbe:
    """What :func:`lyapunov_probe` measured: the exponent and its forward's record."""

    value: Tensor  # () the exponent (differentiable if asked)
    output: Output  # the record of the one tissue forward the estimate ran


def lyapunov_probe(
    net: Network,
    emb: Tensor,
    window: int,
    t0: int = 0,
    iters: int = 8,
    generator: torch.Generator | None = None,
    differentiable: bool = False,
) -> LyapunovProbe:
    """:func:`sequence_lyapunov` of the tissue of ``net`` at embedded inputs ``emb``.

    The probe runs its own forward and keeps its record (nothing is left on the network);
    the cut backward of gate skipping is off meanwhile (the Jacobian of the forward), and
    without ``differentiable`` no gradient reaches the parameters. The network runs in the
    mode (train / eval) it is in.

    Shapes:
        emb: (B, T, d_cell), e.g. ``net.embed[tokens]``.
    """
    records: list[Output] = []

    def tissue(x: Tensor) -> Tensor:
        records.append(net.run_tissue(x))
        return records[-1].state

    with net.cell.exact_backward():  # the Jacobian of the forward, not of a cut backward
        lam = sequence_lyapunov(tissue, emb, window, t0, iters, generator, differentiable)
    return LyapunovProbe(lam, records[-1])


def tissue_lyapunov(
    net: Network,
    emb: Tensor,
    window: int,
    t0: int = 0,
    iters: int = 8,
    generator: torch.Generator | None = None,
    differentiable: bool = False,
) -> Tensor:
    """The exponent of :func:`lyapunov_probe` alone, a scalar tensor."""
    return lyapunov_probe(net, emb, window, t0, iters, generator, differentiable).value


def graph_path_norm(
    edge_index: Tensor, strength: Tensor, level: Tensor, is_input: Tensor, sink_weight: Tensor
) -> Tensor:
    """The 1-path-norm of a levelled DAG of unit-gain nodes (Neyshabur et al., 2015).

    ``Σ`` over all directed paths ``i → … → o`` that start at an input node, of
    ``Π_e |strength_e| · |sink_weight_o|``. Dynamic programming up the levels: ``w_v``, the
    summed weight of all paths from an input to ``v``, is ``[v is input] + Σ_{e: u→v}
    |s_e| w_u``; edges into one level are added in one ``index_add`` once every lower level
    is final. O(N + E) work, one tensor op per level; differentiable in ``strength`` and
    ``sink_weight``.

    Args:
        edge_index: directed edges source → target, each going up a level.
        strength: edge weights (sign ignored).
        level: node depth.
        is_input: nodes where paths start.
        sink_weight: weight of a path ending at each node (sign ignored; 0: not a sink).

    Returns:
        A scalar tensor.

    Shapes:
        edge_index: (2, E) long; strength: (E,); level, is_input, sink_weight: (N,).
    """
    n = level.shape[0]
    if edge_index.dim() != 2 or edge_index.shape[0] != 2 or strength.shape != edge_index[0].shape:
        shapes = f"{tuple(edge_index.shape)} and {tuple(strength.shape)}"
        raise ValueError(f"need edge_index (2, E) and strength (E,); got {shapes}")
    if is_input.shape != (n,) or sink_weight.shape != (n,):
        shapes = f"{(n,)}, {tuple(is_input.shape)}, {tuple(sink_weight.shape)}"
        raise ValueError(f"level, is_input and sink_weight must all be (N,); got {shapes}")
    src, dst = edge_index
    groups = [(sel, src[sel], dst[sel]) for sel in path_norm_plan(edge_index, level)]
    return _path_norm(groups, strength, is_input.to(strength.dtype), sink_weight)


def path_norm_plan(edge_index: Tensor, level: Tensor) -> list[Tensor]:
    """The edge rows of each target level, lowest first (the order of the dynamic program).

    Reads the topology on the host when given host tensors (the tissue's), so that a path
    norm in every training step never waits for the GPU; move the groups to the device once.
    """
    src, dst = edge_index
    if bool((level[src] >= level[dst]).any()):
        raise ValueError("every edge must go from a lower to a higher level")
    order = torch.sort(level[dst], stable=True).indices  # edges grouped by target level
    sizes = level[dst][order].unique_consecutive(return_counts=True)[1]
    return list(order.split(sizes.tolist()))


def _path_norm(
    groups: list[tuple[Tensor, Tensor, Tensor]],
    strength: Tensor,
    weight: Tensor,
    sink_weight: Tensor,
) -> Tensor:
    """The dynamic program of :func:`graph_path_norm` over ``(edge rows, src, dst)`` groups,
    one per target level in increasing order; ``weight`` (N,) starts as the input mask."""
    for sel, src, dst in groups:
        weight = weight.index_add(0, dst, strength[sel].abs() * weight[src])
    return (weight * sink_weight.abs()).sum()


def path_norm(net: Network) -> Tensor:
    """:func:`graph_path_norm` of the cell graph: input cells start paths, output cells end
    them with their ``|readout|`` weight. Differentiable in the ``strength`` and ``readout``
    banks; unchanged by a split (``noise=0``) and by a new edge at strength 0.

    The grouping of edges by level is computed from the (host) tissue once per topology and
    kept on the device (``net.derived``): no host-device synchronisation per call."""
    t = net.tissue
    strength = net.banks["strength"]
    device = strength.device
    key = ("path_norm", device, strength.dtype)
    cached = net.derived.get(key)
    if cached is None:
        src, dst = t.edge_index
        groups = [
            (sel.to(device), src[sel].to(device), dst[sel].to(device))
            for sel in path_norm_plan(t.edge_index, t.level)
        ]
        is_input = (t.role == INPUT).to(device, strength.dtype)
        is_output = (t.role == OUTPUT).to(device, strength.dtype)
        cached = net.derived[key] = (groups, is_input, is_output)
    groups, is_input, is_output = cached
    return _path_norm(groups, strength, is_input, net.banks["readout"] * is_output)

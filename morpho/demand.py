"""Top-down demand: a cell's gate is driven by the gate EMAs of the cells it feeds.

    demand = top_down_demand(net)        # (N,) added to each cell's gate logit

With ``network.demand_weight`` set, the forward adds this to every gate logit; the gate
EMAs come from the tissue (``tissue.gate_ema``, written by the growth scheduler at its
checks) and are copied to the device only when they changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    from morpho.network import Network


def top_down_demand(net: Network) -> Tensor:
    """(N,) ``w · max_e(|s_e| g_b) / max_e |s_e|`` over each cell's edges ``e: a → b``.

    The demand on a cell's gate is the gate EMA (``tissue.gate_ema``, kept by the
    scheduler) of the cells it feeds — the levels above — taken where it feeds them
    most strongly. The max form keeps every edit function-preserving: a split halves a
    mother's outgoing strengths (the ratio is unchanged), a split target repeats an
    identical term, and a new edge at strength 0 adds a zero term. A strength-weighted
    *mean* would not survive the split of a target. Cells feeding nothing get 0.
    """
    t = net.tissue
    src, dst = net.edge_index
    s = net.banks["strength"].detach().abs()
    g = device_gate_ema(net).to(s.dtype)
    zeros = s.new_zeros(t.num_nodes)
    num = zeros.scatter_reduce(0, src, s * g[dst], reduce="amax", include_self=True)
    den = zeros.scatter_reduce(0, src, s, reduce="amax", include_self=True)
    return net.cfg.demand_weight * num / den.clamp(min=1e-12)


def device_gate_ema(net: Network) -> Tensor:
    """``tissue.gate_ema`` on the device, copied again only when the scheduler changed it
    (a per-step copy from pageable host memory would make the host wait on CUDA)."""
    src = net.tissue.gate_ema
    if src.is_inference():  # no version counter (made under inference_mode): no cache
        return src.to(net.embed.device)
    cached = net._gate_ema
    if cached is None or cached[0] is not src or cached[1] != src._version:
        cached = (src, src._version, src.to(net.embed.device))
        net._gate_ema = cached
    return cached[2]

"""The gradient correlation of each cell's read → write path, for GradMax widening.

    probe = gradient_correlation(net, batch)   # correlation, directions (N, D, D); write_norm (N,)
    # the widen rule (init = "gradmax") writes the k new channels along directions[:, :, :k]

GradMax (Evci et al. 2022) grows a neuron with zero fan-in, so the function is unchanged,
and chooses its fan-out to make the gradient of the fan-in as large as possible: for a new
channel with read column ``r`` (zero) and write row ``w``, the gradient of ``r`` through the
cell's linear read → write path is ``Mᵀ w`` with ``M = Σ_{b,t} g x̂ᵀ`` — ``g = ∂L/∂y`` the
gradient at the cell's output (D,), ``x̂`` its normalised stream read (D,). Maximising
``Σ_j ‖Mᵀ w_j‖²`` over orthogonal write rows of a given norm gives the top left singular
vectors of ``M``. The exact gradient of a new channel of the wide cell also passes its
causal convolution, recurrence and MLP; ``M`` is the linear path's part, GradMax's own
approximation for a layer.

Wide-stream cells only (``morpho.cells_wide``: ``w_read``, ``w_write``); None otherwise or
under ACT. One whole forward and backward on the last batch (up to ``max_batch``
sequences), charged by a FLOP counter as a training step's; the correlation's product is
charged through :meth:`~morpho.network.Network.charge`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from morpho.cells import rms_norm
from morpho.growth.splitting import Batch, output_gradients
from morpho.network import Network

GRADMAX_BANKS = ("norm", "w_read", "w_write")  # what the probe reads of a cell type


@torch.no_grad()
def gradient_correlation(
    net: Network, batch: Batch, max_batch: int = 4
) -> dict[str, Tensor] | None:
    """Per cell, ``M = Σ_{b,t} g x̂ᵀ`` (N, D, D), its left singular vectors as columns,
    largest first (``directions``, N, D, D) and the mean norm of its write rows (N,)."""
    if any(k not in net.banks for k in GRADMAX_BANKS):
        return None
    x, y = batch
    with torch.enable_grad():
        grads = output_gradients(net, (x[:max_batch], y[:max_batch]))
    if grads is None:
        return None
    inputs, g = grads
    xs = torch.cat(inputs)  # (N, B, T, D)
    xhat = rms_norm(xs) * net.banks["norm"].detach()[:, None, None]
    corr = torch.einsum("nbti,nbtj->nij", g, xhat)  # (N, D, D)
    n, b, t, d = xs.shape
    net.charge("probe", 2.0 * n * b * t * d * d)
    write = net.banks["w_write"].detach()  # (N, d, D)
    u, _, _ = torch.linalg.svd(corr.cpu())  # (N, D, D), singular values descending
    norm = write.norm(dim=2).mean(1).cpu()
    return {"correlation": corr.cpu(), "directions": u, "write_norm": norm}

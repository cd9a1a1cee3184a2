"""Free energy of a cell, ``F = U − τ·S + γ·W`` (DESIGN §3), from statistics the forward records.

Energy terms are small functions of per-cell statistics, ``stats -> (N,)``, kept in the
:data:`ENERGY_TERMS` registry (the Hamiltonian terms of a cellular-Potts simulator, as in
CompuCell3D's energy plugins); :func:`free_energy` sums them with weights from the config:

    stats = {**net.stats, "wiring": wiring_cost(net.tissue).to(device)}
    F = free_energy(stats, {"internal": 1.0, "entropy": -0.1, "wiring": 0.02})   # (N,)

Built-in terms:
    ``internal`` U: the cell's local prediction error (``stats["surprise"]``);
    ``entropy``  S: the demon gate's mean binary entropy per token (``stats["gate_entropy"]``,
                 or the entropy of ``gate_mean`` when a cell type records none);
    ``wiring``   W: half the length, in ``pos`` space, of every edge at the cell (each edge's
                 length is shared by its two ends, so ``Σ W`` is the tissue's total wire).
    ``repr_entropy`` S: KNIFE differential entropy of the cell's output states, in nats
                 (``stats["repr_entropy"]``: :func:`morpho.entropy.representation_entropy`
                 of ``net.captured["outputs"]``).

Third-party terms register under the ``morpho.energy_terms`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor
from torch_geometric.data import Data

from morpho.cells import binary_entropy
from morpho.registry import Registry

EnergyTerm = Callable[[Mapping[str, Tensor]], Tensor]
ENERGY_TERMS: Registry[EnergyTerm] = Registry("energy term", "morpho.energy_terms")


def register_energy_term(name: str, term: EnergyTerm) -> EnergyTerm:
    """Add ``term`` (per-cell statistics → (N,) energy) under ``name``."""
    return ENERGY_TERMS.register(name, term)


def internal_energy(stats: Mapping[str, Tensor]) -> Tensor:
    """U: local prediction error of the cell's inertial core."""
    return stats["surprise"]


def gate_entropy(stats: Mapping[str, Tensor]) -> Tensor:
    """S: how undecided the cell's gate is, in nats (0 when always open or shut)."""
    if "gate_entropy" in stats:
        return stats["gate_entropy"]
    return binary_entropy(stats["gate_mean"])


def wiring_energy(stats: Mapping[str, Tensor]) -> Tensor:
    """W: length of the cell's edges (see :func:`wiring_cost`)."""
    return stats["wiring"]


def repr_entropy_energy(stats: Mapping[str, Tensor]) -> Tensor:
    """S: spread of the cell's hidden states, a KNIFE entropy estimate (see morpho.entropy)."""
    return stats["repr_entropy"]


register_energy_term("internal", internal_energy)
register_energy_term("entropy", gate_entropy)
register_energy_term("wiring", wiring_energy)
register_energy_term("repr_entropy", repr_entropy_energy)


def wiring_cost(tissue: Data) -> Tensor:
    """(N,) half the summed Euclidean length of the edges at each cell (in + out).

    Long "wormhole" edges cost in proportion to their length.
    """
    src, dst = tissue.edge_index
    length = (tissue.pos[src] - tissue.pos[dst]).norm(dim=-1)  # (E,)
    cost = torch.zeros(tissue.num_nodes, dtype=length.dtype)
    return cost.index_add(0, src, 0.5 * length).index_add(0, dst, 0.5 * length)


def free_energy(stats: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """``Σ_k weights[k] · term_k(stats)``, per cell.

    Args:
        stats: per-cell statistics, each (N,) — ``surprise``, ``gate_mean``,
            ``gate_entropy``, ``wiring``, … whatever the weighted terms read.
        weights: term name → weight; ``F = U − τS + γW`` is
            ``{"internal": 1, "entropy": -τ, "wiring": γ}``.

    Returns:
        (N,) free energy per cell.

    Raises:
        ValueError: no terms, an unknown term, or a statistic a term needs is missing.
    """
    if not weights:
        raise ValueError("free energy needs at least one weighted term; got none")
    total: Tensor | None = None
    for name, weight in weights.items():
        term = ENERGY_TERMS.get(name)
        try:
            value = weight * term(stats)
        except KeyError as e:
            raise ValueError(
                f"energy term {name!r} needs statistic {e.args[0]!r}; "
                f"got: {', '.join(sorted(stats))}"
            ) from None
        total = value if total is None else total + value
    assert total is not None
    return total

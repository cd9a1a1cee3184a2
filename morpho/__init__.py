"""morpho: a morphogenesis simulator for neural networks.

A network is a living graph of thermodynamic cells (``morpho.tissue``) whose parameters
are stacked in banks (``morpho.network``); topology edits carry parameters and optimizer
state across every change (``morpho.edits``, ``morpho.surgery``).

    import morpho
    net = morpho.Network(morpho.NetworkConfig(vocab_size=64))
    opt = torch.optim.AdamW(net.parameters())
    morpho.split(net, net.cell_ids()[3], optimizer=opt)

A run directory reads back as tables (``morpho.runs``): ``morpho.load_run("runs/demo").metrics``.
"""

import morpho.cells_thermo  # noqa: F401  (registers the "thermo" cell type)
import morpho.cells_wide  # noqa: F401  (registers the "wide" cell type)
from morpho.apply import apply_edit, connect, disconnect, insert, remove, split, widen
from morpho.edits import (
    Edit,
    connect_edit,
    disconnect_edit,
    identity_edit,
    insert_edit,
    remove_edit,
    split_edit,
    widen_edit,
)
from morpho.network import Network, NetworkConfig
from morpho.runs import RunRecords, load_run
from morpho.surgery import RowMap, migrate_optimizer_state

__version__ = "0.1.0"

__all__ = [
    "Edit",
    "Network",
    "NetworkConfig",
    "RowMap",
    "RunRecords",
    "apply_edit",
    "connect",
    "connect_edit",
    "disconnect",
    "disconnect_edit",
    "identity_edit",
    "insert",
    "insert_edit",
    "load_run",
    "migrate_optimizer_state",
    "remove",
    "remove_edit",
    "split",
    "split_edit",
    "widen",
    "widen_edit",
]

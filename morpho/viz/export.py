"""ParaView and graph exports of a run (``morpho export``).

    export_vtp("runs/demo", out="runs/demo/export")        # step_*.vtp + run.pvd
    export_graphml("runs/demo", out="runs/demo/tissue.graphml")

A ``.vtp`` holds one snapshot: cells as points at their ``pos`` with every per-cell field
as a point array (level, role, birth, parent, cell_id, fe_ema, gate_ema, …), edges as line
cells with ``edge_id``, ``edge_birth`` and ``strength`` as cell arrays. The ``.pvd`` index
lists them with the training step as time, so ParaView plays the run. The folder is laid out
beside ``out`` and moved in at the end: a failed export leaves nothing half-written.
"""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from morpho.files import atomic_path, atomic_write
from morpho.rundir import check_out_file, write_dir
from morpho.tissue import save_graphml
from morpho.viz.runs import Snapshot, load_run, read_tissue, require_snapshots

FORMATS = ("vtp", "graphml")


def snapshot_polydata(s: Snapshot):  # type: ignore[no-untyped-def]
    """The snapshot as a ``pyvista.PolyData`` (points = cells, lines = edges)."""
    import pyvista as pv

    points = np.asarray(s.cells["pos"], dtype=np.float32).reshape(-1, 3)
    src, dst = s.edges["edge_index"]
    lines = np.column_stack([np.full(len(src), 2), src, dst]).ravel()
    mesh = pv.PolyData(points, lines=lines if len(src) else None)
    if s.n_cells:
        for name, values in s.cells.items():
            if name != "pos":
                mesh.point_data[name] = np.asarray(values)
    if s.n_edges:
        for name, values in s.edges.items():
            if name != "edge_index":
                mesh.cell_data[name] = np.asarray(values)
    return mesh


def export_vtp(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """One ``step_XXXXXXXX.vtp`` per snapshot and a ``run.pvd`` index in the folder ``out``
    (default ``<run>/export``), written whole: a non-empty ``out`` is refused unless
    ``overwrite``, and then replaced.

    Returns:
        The ``.pvd`` path.
    """
    from morpho.viz.scene import offscreen

    offscreen()  # pyvista settings only; nothing is drawn
    run = load_run(run_dir)
    folder = Path(out) if out is not None else run.path / "export"

    def layout(staging: Path) -> None:
        entries = []
        for s in run.snapshots:
            name = f"step_{s.step:08d}.vtp"
            with atomic_path(staging / name) as tmp:
                snapshot_polydata(s).save(tmp)
            entries.append((s.step, name))
        text = _pvd(entries)
        atomic_write(staging / "run.pvd", lambda f: f.write(text.encode()))

    write_dir(folder, layout, overwrite)
    return folder / "run.pvd"


def _pvd(entries: list[tuple[int, str]]) -> str:
    rows = "\n".join(
        f'    <DataSet timestep="{step}" group="" part="0" file={quoteattr(name)}/>'
        for step, name in entries
    )
    return (
        '<?xml version="1.0"?>\n<VTKFile type="Collection" version="0.1">\n  <Collection>\n'
        f"{rows}\n  </Collection>\n</VTKFile>\n"
    )


def export_graphml(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """The final tissue as GraphML (nodes named by ``cell_id``, written atomically) at the
    file ``out`` (default ``<run>/export/tissue.graphml``; an existing file only with
    ``overwrite``)."""
    last = require_snapshots(run_dir)[-1]
    path = Path(out) if out is not None else Path(run_dir) / "export" / "tissue.graphml"
    check_out_file(path, "--out", overwrite)
    tissue, _ = read_tissue(last)
    save_graphml(tissue, path)
    return path

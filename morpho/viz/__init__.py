"""morpho.viz: growth movies, plots, exports and TensorBoard files of a run directory
(``morpho render``, ``morpho plot``, ``morpho export``, ``morpho tensorboard``).

Reads run directories only (DESIGN §5), never a live process's state (``morpho grow
--tensorboard`` mirrors the run directory as it is written). Modules: ``runs`` (read a run
into numpy), ``layout`` (stable relaxed positions), ``coloring`` (what ``--color`` paints),
``timeline`` (interpolated frame states), ``legend`` (the key panel), ``scene`` (the
off-screen pyvista scene), ``render`` (movies and stills), ``plots`` (matplotlib panels),
``export`` (vtp + pvd, GraphML), ``tensorboard`` (event files), ``graph2d`` (a flat picture
of one snapshot), ``synthetic`` (a run grown by engine edits alone, for tests and
benchmarks). pyvista is imported only by ``scene`` and ``export``, and only when a command
runs.
"""

"""morpho.viz: growth movies, plots and exports of a run directory (``morpho render``,
``morpho plot``, ``morpho export``).

Reads run directories only (DESIGN §5), never a live process. Modules:
``runs`` (read a run into numpy), ``layout`` (stable relaxed positions), ``coloring``
(what ``--color`` paints), ``timeline`` (interpolated frame states), ``legend`` (the key
panel), ``scene`` (the off-screen pyvista scene), ``render`` (movies and stills),
``plots`` (matplotlib panels), ``export`` (vtp + pvd, GraphML), ``synthetic`` (a run grown
by engine edits alone, for tests and benchmarks), ``page`` / ``page_data`` (the interactive
``.html`` page), ``headless`` (headless Chromium over the DevTools pipe, for the page's
tests). pyvista is imported only by ``scene``
and ``export``, and only when a command runs.

``tensorboard`` writes TensorBoard event files of runs (``morpho tensorboard``), also while a
run is written (``morpho grow --tensorboard`` mirrors its directory); ``graph2d`` draws one
snapshot flat for it.
"""

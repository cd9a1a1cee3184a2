"""Every script in ``benchmarks/`` runs at tiny sizes, so a change to the API it uses
shows up here and not in the next measurement.

Each script is run as ``python benchmarks/NAME.py ARGS`` would run it (``runpy`` as
``__main__``, ``sys.argv`` set, from a temporary working directory), in this process so
that torch and morpho are imported once. **Every** ``benchmarks/*.py`` must be listed in
:data:`SCRIPTS` with arguments that make it finish in a few seconds (add a tiny-size flag
to the script where it has none); :func:`test_every_script_is_listed` fails otherwise.
A script that needs an optional package names it in :data:`NEEDS` and is skipped, with
the reason, where the package is not installed; one that cannot be made fast (it starts
processes of its own) is listed in :data:`SLOW` with the reason and runs, as a command,
with ``-m slow``. ``{tmp}`` in an argument is the temporary directory; ``{fixture:NAME}`` a run
or bench that :func:`prepare` makes.
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from morpho.cli import app

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"

# script → tiny arguments (split on spaces); one entry per script: add every new script here
SCRIPTS: dict[str, str] = {
    "analytic_features.py": "--ridges 1e-3 --widths 16 --pixel-widths 16 --max-train 40",
    "avalanche_peers.py": "--streams split-digits --seeds 1 --strategies Naive --morpho= "
    "--tune-seeds 0 --out {tmp}/av.json",
    "cell_design.py": "--throughput wide,gru --timing-steps 4 --params 5000 --preset small",
    "compare_runs.py": "{fixture:run} {fixture:run}",
    "compile_cell.py": "--steps 1 --batch 2 --seq 8 --backend eager",
    "data_parallel.py": "--steps 2 --nproc 1",
    "edit_cost.py": "--sizes 8 --repeats 1 --batch 1 --seq-len 4 --d-cell 4 --levels 4 --threads 1",
    "growth_saving.py": "--preset small --steps 2 --seeds 0 --out {tmp}/gs",
    "heldout_text.py": "{tmp}/heldout.txt",
    "html_page.py": "--cells 90 --loads 1 --run {tmp}/page",
    "images_table.py": "{fixture:bench}",
    "kernels.py": "--cells 2 --batch 1 --seq 8 --d-cell 4 --repeats 1",
    "lang_domains.py": "--out {tmp}/ld --steps-per-domain 2 --seeds 1 --lrs 1e-2 --rows naive "
    "--jobs 1",
    "ngram_floor.py": "--preset small --data {fixture:text}",
    "lr_sweep.py": "--preset small --steps 2 --rows fixed --out {tmp}/lr",
    "render_cost.py": "--cells 12 --frames 2 --size 320x160 --cores 1",
    "scaling.py": "--sizes 8 --repeats 1 --levels 4 --seq-len 4",
    "rule_controls.py": "--grow {benchmarks}/grow_split_steepest.toml --preset wide --steps 4 "
    "--seeds 0 1 --lr-grid 1e-2 --out {tmp}/rc",
    "signal_controls.py": "--seeds 0 --steps 4 --out {tmp}/sc",
    "signal_information.py": "--seeds 0 --at 2 --recover 2 --out {tmp}/si.json",
    "split_symmetry.py": "--out {tmp}/sym --rows none,asymmetric:0.01:independent --seeds 0 "
    "--at 2 --steps 4",
    "static_peers.py": "--kind gru --steps 2 --params 5000",
    "throughput.py": "--steps 1 --warmup 0 --batch 1 --seq 8 --d-cell 8 --levels 1 1 --no-memory",
    "widen_growth.py": "--out {tmp}/wg --steps 4 --eval-every 2 --at 2 --interval 1 --rows widen@2",
}
# scripts too slow for the default suite, with the reason
SLOW = {
    "data_parallel.py": "starts three morpho processes, one of them under torchrun",
    "html_page.py": "opens the page in headless Chromium",
    "lang_domains.py": "runs its rows in a process pool",
    "signal_controls.py": "starts a morpho process per row",
}
NEEDS = {"avalanche_peers.py": "avalanche", "render_cost.py": "pyvista"}  # optional packages


def test_every_script_is_listed() -> None:
    scripts = {p.name for p in BENCHMARKS.glob("*.py")}
    assert scripts - set(SCRIPTS) == set(), "give each new benchmark script tiny arguments here"
    assert set(SCRIPTS) - scripts == set(), "a listed script no longer exists"


def prepare(name: str, tmp: Path) -> str:
    """A fixture a script reads: ``run`` (a run directory), ``bench`` (a digits bench),
    ``text`` (a small UTF-8 text file: this module's source, repeated)."""
    if name == "text":
        path = tmp / "text.txt"
        path.write_text(Path(__file__).read_text(encoding="utf-8") * 4, encoding="utf-8")
        return str(path)
    if name == "run":
        args = ["grow", "--steps", "2", "--quiet"]
    else:
        args = ["bench", "--task", "digits", "--steps", "2", "--rows", "morpho-fixed"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp / name)])
    assert result.exit_code == 0, result.output
    return str(tmp / name)


@pytest.mark.parametrize(
    "script",
    [pytest.param(s, marks=pytest.mark.slow) if s in SLOW else s for s in sorted(SCRIPTS)],
)
def test_the_script_runs_at_tiny_sizes(
    script: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = NEEDS.get(script)
    if package and importlib.util.find_spec(package) is None:
        pytest.skip(f"{script} needs the optional package {package!r}, not installed")
    args, prepared = [], {}
    for arg in SCRIPTS[script].split():
        if arg.startswith("{fixture:"):
            name = arg[len("{fixture:") : -1]
            arg = prepared[name] = prepared.get(name) or prepare(name, tmp_path)
        args.append(arg.replace("{tmp}", str(tmp_path)).replace("{benchmarks}", str(BENCHMARKS)))
    if script in SLOW:  # they start processes of their own: run as a command
        cmd = [sys.executable, str(BENCHMARKS / script), *args]
        subprocess.run(cmd, check=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
        return
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # scripts import each other, as when run
    monkeypatch.setattr(sys, "argv", [str(BENCHMARKS / script), *args])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        runpy.run_path(str(BENCHMARKS / script), run_name="__main__")
    except SystemExit as stop:
        assert stop.code in (0, None), f"{script} exited with {stop.code}"

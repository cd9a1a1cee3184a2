"""Regenerate every picture of the README from the current code.

    python docs/make_figures.py                # runs into runs/figures, PNGs into docs/
    python docs/make_figures.py --work /tmp/f  # elsewhere

Each figure comes from the ``morpho`` command the README names beside it (about ten
minutes on 2 CPU cores: four small runs and a two-row bench):

    docs/growth_frame.png     morpho render RUN --frame 210 --color gate   (seed-1 run)
    docs/plot_metrics.png     morpho plot RUN                              (seed-0 run)
    docs/plot_growth.png      the same plot folder
    docs/plot_mechanisms.png  morpho plot of a run with docs/mechanisms.toml
    docs/allon_frame.png      morpho render RUN --frame 600 --color clock  (that run)
    docs/series_frame.png     morpho bench --seed 1 --rows morpho --mechanisms series, then
                              morpho render RUN/morpho+series --frame 425 --color level
    docs/growth_vs_scratch.png benchmarks/growth_saving.py (width growth against scratch and
                              the G_stack Transformer, seed 0), then morpho plot OUT/0

    docs/controls_envelope.png benchmarks/growth_saving.py with grow_width_controls.toml (width
                              growth, its schedule and random controls, the fixed-size
                              envelope; seed 0), then morpho plot OUT/0

    docs/images_digits.png    morpho bench --task digits --preset digits --seed 0, then
                              morpho plot BENCH (accuracy against FLOPs)
    docs/images_mnist.png     morpho bench --task mnist --preset mnist --seed 0 --rows
                              morpho,morpho-fixed,morpho-reset,mlp,gromo (gromo if installed)

    docs/stream_heatmap_analytic.png  morpho stream --stream split-digits --scenario class
    docs/stream_heatmap_replay.png  --methods analytic,replay,naive (seed 0, short budget, the
    docs/stream_tasks.png           defaults): two heatmaps and accuracy_per_task.png

    docs/lang_domains_growth.png  morpho grow --task lang-domains --preset wide --config
                              benchmarks/lang_domains.toml --seed 0, then morpho render RUN
                              --frame 600 --color domain (cells by the domain they were
                              born for: pydoc 0, stdlib 1, csv 2)
    docs/growth_page.png      morpho render RUN --out RUN.html --color gate (the seed-0 run),
                              a screenshot in headless Chromium with one cell clicked; and
                              the page of the first seed's run of morpho stream --stream
                              lang-domains --methods morpho (pages in WORK/pages)

``--only NAME …`` regenerates a subset: ``lang`` (the first five), ``saving``, ``controls``,
``images`` (an hour on 2 cores: the MNIST bench), ``stream`` (a minute), ``page`` (the pages
and their screenshot; needs chromium), ``lang-domains`` (four minutes).

The runs' one-line summaries are printed, so the README's captions can be checked.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent


def morpho(*args: object) -> str:
    """Run one ``morpho`` command (this interpreter's package); returns its stdout."""
    cmd = [sys.executable, "-m", "morpho", *map(str, args)]
    print("$ morpho " + " ".join(map(str, args)), flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    print(out.strip().splitlines()[-1] if out.strip() else "", flush=True)
    return out


def grow(work: Path, name: str, *args: object) -> Path:
    run = work / name
    morpho(
        "grow", "--task", "lang", "--preset", "small", "--quiet", "--out", run, "--overwrite", *args
    )
    return run


def still(run: Path, step: int, color: str, png: str) -> None:
    morpho("render", run, "--frame", step, "--color", color, "--out", DOCS / png, "--overwrite")


def plots(run: Path, names: dict[str, str]) -> None:
    folder = run / "plots"
    morpho("plot", run, "--out", folder, "--overwrite")
    for panel, png in names.items():
        shutil.copyfile(folder / f"{panel}.png", DOCS / png)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/figures"), help="run folder")
    parser.add_argument("--only", nargs="*", choices=GROUPS, default=list(GROUPS))
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    for group in args.only:
        GROUPS[group](work)


def saving(work: Path) -> None:
    """Grown in width against scratch, on the FLOPs axis (the lrs BENCHMARKS.md records)."""
    out = work / "saving"
    script = DOCS.parent / "benchmarks" / "growth_saving.py"
    cmd = [sys.executable, str(script), "--preset", "wide", "--grow"]
    cmd += [str(DOCS.parent / "benchmarks" / "grow_width.toml"), "--grown-steps", "700"]
    cmd += ["--seeds", "0", "--stack", "--out", str(out), "--lr", *SAVING_LRS]
    print("$ python " + " ".join(cmd[1:]), flush=True)
    print(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout, flush=True)
    plots(out / "0", {"bpc_vs_flops": "growth_vs_scratch.png"})


def controls(work: Path) -> None:
    """Width growth against its blind controls and the fixed-size envelope (seed 0)."""
    out = work / "controls"
    bench = DOCS.parent / "benchmarks"
    cmd = [sys.executable, str(bench / "growth_saving.py"), "--preset", "wide", "--grow"]
    cmd += [str(bench / "grow_width_controls.toml"), "--grown-steps", "700", "--seeds", "0"]
    cmd += ["--rows", "grown", "random", "schedule", "scratch", *CONTROL_ENVELOPE]
    cmd += ["--out", str(out), "--lr", *SAVING_LRS, *(f"{r}=1.5e-2" for r in CONTROL_ENVELOPE)]
    print("$ python " + " ".join(cmd[1:]), flush=True)
    print(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout, flush=True)
    plots(out / "0", {"bpc_vs_flops": "controls_envelope.png"})


CONTROL_ENVELOPE = ["envelope-0.25x", "envelope-0.5x", "envelope-2x"]
SAVING_LRS = [
    "grown=1.5e-2",
    "scratch=1.5e-2",
    "scratch-plain=1.5e-2",
    "transformer=1.2e-2",
    "transformer-stack=1.2e-2",
]


def lang(work: Path) -> None:
    default = grow(work, "lang-small-seed0", "--seed", "0")
    plots(default, {"metrics": "plot_metrics.png", "growth": "plot_growth.png"})
    hero = grow(work, "lang-small-seed1", "--seed", "1")
    still(hero, 210, "gate", "growth_frame.png")
    all_on = grow(work, "all-on", "--config", DOCS / "mechanisms.toml")
    plots(all_on, {"mechanisms": "plot_mechanisms.png"})
    still(all_on, 600, "clock", "allon_frame.png")
    bench = work / "bench-series"
    morpho(
        "bench",
        "--seed",
        "1",
        "--rows",
        "morpho",
        "--mechanisms",
        "series",
        "--out",
        bench,
        "--overwrite",
    )
    still(bench / "morpho+series", 425, "level", "series_frame.png")


def stream(work: Path) -> None:
    """A class-incremental stream: morpho's and replay's accuracy matrices, every task's
    accuracy over the stream."""
    out = work / "stream"
    morpho(
        "stream",
        "--stream",
        "split-digits",
        "--scenario",
        "class",
        "--methods",
        "analytic,replay,naive",
        "--out",
        out,
        "--overwrite",
    )
    for name in ("analytic", "replay"):
        shutil.copyfile(out / f"heatmap_{name}.png", DOCS / f"stream_heatmap_{name}.png")
    shutil.copyfile(out / "accuracy_per_task.png", DOCS / "stream_tasks.png")


def images(work: Path) -> None:
    """The image benches' accuracy-against-FLOPs curves (seed 0)."""
    import importlib.util

    mnist_rows = "morpho,morpho-fixed,morpho-reset,mlp"
    if importlib.util.find_spec("gromo") is not None:  # the optional peer
        mnist_rows += ",gromo"
    rows = {"digits": [], "mnist": ["--rows", mnist_rows]}
    for task, extra in rows.items():
        bench = work / f"{task}-s0"
        morpho(
            "bench",
            "--task",
            task,
            "--preset",
            task,
            "--seed",
            "0",
            *extra,
            "--out",
            bench,
            "--overwrite",
        )
        plots(bench, {"accuracy_vs_flops": f"images_{task}.png"})


def lang_domains(work: Path) -> None:
    """The language-domain stream's tissue at its end, cells coloured by birth domain."""
    run = work / "lang-domains"
    config = DOCS.parent / "benchmarks" / "lang_domains.toml"
    morpho(
        "grow",
        "--task",
        "lang-domains",
        "--preset",
        "wide",
        "--config",
        config,
        "--seed",
        0,
        "--quiet",
        "--out",
        run,
        "--overwrite",
    )
    still(run, 600, "domain", "lang_domains_growth.png")


def page(work: Path) -> None:
    """Interactive pages of the README's main run and of a lang-domains stream's run, and a
    screenshot of the first with a newborn cell clicked."""
    run = work / "lang-small-seed0"
    if not (run / "summary.json").exists():
        grow(work, "lang-small-seed0", "--seed", "0")
    pages = work / "pages"
    pages.mkdir(exist_ok=True)
    html = pages / "lang-small-seed0.html"
    morpho("render", run, "--out", html, "--color", "gate", "--overwrite")
    out = work / "stream-lang-domains"
    morpho("stream", "--stream", "lang-domains", "--methods", "morpho", "--out", out, "--overwrite")
    stream_run = sorted(p.parent.parent for p in out.glob("runs/**/snapshots/*.npz"))[0]
    morpho("render", stream_run, "--out", pages / "lang-domains.html", "--overwrite")
    screenshot(html, DOCS / "growth_page.png")


def screenshot(html: Path, png: Path) -> None:
    """The page at 1400 × 860 in headless Chromium, the newest cell clicked."""
    import time

    from morpho.viz.headless import Browser

    with Browser() as b:
        b.open(html, (1400, 860))
        while not b.eval("!!(window.morphoPage && window.morphoPage.frames)"):
            time.sleep(0.05)
        ids = b.eval("window.morphoPage.ids()")
        at = b.eval(f"window.morphoPage.project({max(ids)})")
        b.click(at["x"], at["y"])
        time.sleep(0.3)
        png.write_bytes(b.screenshot())
        if b.errors:
            raise RuntimeError(f"the page logged errors: {b.errors}")
    print(f"wrote {png}", flush=True)


GROUPS = {
    "lang": lang,
    "saving": saving,
    "controls": controls,
    "images": images,
    "stream": stream,
    "page": page,
    "lang-domains": lang_domains,
}


if __name__ == "__main__":
    main()

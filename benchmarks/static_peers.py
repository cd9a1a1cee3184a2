"""The bench's static peers trained alone: best val bpc of a Transformer or GRU, one JSON line.

Each run builds ``morpho.sims.baselines`` at ``--params`` and trains it through the
project's own :class:`~morpho.trainer.Trainer` on a preset's batches (the very loop, data
order and eval windows of ``morpho bench``), e.g. to sweep a row's learning rate or to see
what its initialisation costs:

    python benchmarks/static_peers.py --kind transformer --params 183000 --lr 3e-3 --seed 0
    python benchmarks/static_peers.py --kind transformer --init gpt2       # the old init
    python benchmarks/static_peers.py --kind gru --preset cpu --params 400000 --lr 1.2e-2

``--init`` (Transformer only) re-initialises the built model: ``fan_in`` (the baseline's
own: weights N(0, 1/fan_in), embeddings N(0, 1)), ``gpt2`` (every weight N(0, 0.02),
residual projections / sqrt(2·depth): the bench's init before), ``torch`` (PyTorch's
defaults), ``embed-only`` (gpt2 but embeddings N(0, 1)), ``matrix-only`` (fan_in but
embeddings N(0, 0.02)). ``--preset`` takes run presets and bench presets alike. The
re-initialised schemes draw their own random numbers: the same distributions as a model
built with them, not the same values.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from torch import nn

from morpho.grow import build_task
from morpho.sims.baselines import CharTransformer, build_baseline
from morpho.sims.bench import bench_config
from morpho.trainer import Trainer

INITS = ("fan_in", "gpt2", "torch", "embed-only", "matrix-only")


def reinit(model: CharTransformer, init: str) -> None:
    """Re-initialise ``model``'s weights by the scheme ``init`` (see the module docstring)."""
    if init == "fan_in":
        return
    if init == "torch":
        for m in model.modules():
            reset = getattr(m, "reset_parameters", None)
            if m is not model and callable(reset):
                reset()
        return
    for name, p in model.named_parameters():
        if p.dim() == 2 and not name.startswith("embed"):
            std = 0.02 if init in ("gpt2", "embed-only") else p.shape[1] ** -0.5
            if name.endswith(("proj.weight", "out.weight")):
                std /= math.sqrt(2 * model.cfg.n_layer)
            nn.init.normal_(p, std=std)
    nn.init.normal_(model.embed.weight, std=1.0 if init == "embed-only" else 0.02)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kind", choices=("transformer", "gru"), default="transformer")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--corpus", default="pydoc")
    ap.add_argument("--params", type=int, default=183_000)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--init", choices=INITS, default="fan_in")
    args = ap.parse_args()
    torch.set_num_threads(1)
    overrides = {
        "task_options": {"corpus": args.corpus},
        "train": {"lr": args.lr, "seed": args.seed, "steps": args.steps},
    }
    cfg, _ = bench_config(args.preset, None, overrides)
    task = build_task(cfg)
    model = build_baseline(args.kind, task.vocab_size, args.params, seed=args.seed)
    if args.kind == "transformer":
        torch.manual_seed(args.seed)
        reinit(model, args.init)  # type: ignore[arg-type]
    start = time.perf_counter()
    summary = Trainer(model, task, cfg.train).fit()
    out = {**vars(args), "n_params": summary["params"], "best_val_bpc": summary["best_val_bpc"]}
    print(
        json.dumps({**out, "final_val_bpc": summary["val_bpc"], "s": time.perf_counter() - start})
    )


if __name__ == "__main__":
    main()

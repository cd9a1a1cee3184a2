"""Which features the analytic learner's heads should read, chosen on validation: the
tissue as born or trained on the first task, every cell at every row or the pooled
readout, with or without a random ReLU expansion, and the random-features control (a
random ReLU layer over the raw pixels). Each design is one ridge fit on every task's
training split at once (the head the learner reaches after the last task).

Every design and ridge is scored on the validation split carved from the training data
(fit on the rest); the design and ridge with the best validation accuracy are then refit
on the whole training split and scored once on the test split. Only that row reads test.

    OMP_NUM_THREADS=1 python benchmarks/analytic_features.py --stream split-digits
    OMP_NUM_THREADS=1 python benchmarks/analytic_features.py --stream split-mnist
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from morpho.sims.analytic import AnalyticLearner, RandomExpansion, RidgeStats
from morpho.sims.stream_run import StreamConfig, network_config
from morpho.sims.stream_task import StreamOnTrainer, steps_for
from morpho.sims.streams import Stream, build_stream
from morpho.trainer import Trainer

Design = tuple[str, Callable[[Tensor], Tensor]]  # name, images (n, H, W) → features (n, D)


def joined(stream: Stream) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Every task's training and test (here: scoring) splits, concatenated."""
    cat = lambda attr: torch.cat([getattr(k, attr) for k in stream.tasks])  # noqa: E731
    return cat("x_train"), cat("y_train"), cat("x_test"), cat("y_test")


def accuracy(f_tr: Tensor, y_tr: Tensor, f_te: Tensor, y_te: Tensor, ridge: float) -> float:
    stats = RidgeStats(f_tr.shape[1], 10)
    stats.add(f_tr, F.one_hot(y_tr, 10))
    w = stats.solve(ridge)
    return 100 * float(((f_te.double() @ w).argmax(1) == y_te).double().mean())


def designs(stream: Stream, seed: int) -> list[Design]:
    """Every feature map compared, each built from the training data it is fit on."""
    cfg = StreamConfig(stream=stream.name)
    task = StreamOnTrainer(stream, stream, steps_for(stream, 4, cfg.train.batch_size))
    net_cfg = network_config(cfg, task, seed)
    out: list[Design] = []
    for trained in (False, True):
        for cell_readout in (True, False):
            learner = AnalyticLearner(task, net_cfg, seed=seed, cell_readout=cell_readout)
            if trained:  # the first task by gradient on the trainer (naive), then frozen
                train = replace(cfg.train, steps=task.steps_per_task, seed=seed)
                with torch.enable_grad():
                    Trainer(learner.net.train(), task, train).fit()
                learner.net.eval()
            tissue = f"tissue {'trained on task 0' if trained else 'as born':17} " + (
                "every cell" if cell_readout else "pooled    "
            )
            raw = learner.raw_features
            out.append((f"{tissue} expand     -", raw))
            if cell_readout:
                d_in = raw(stream.tasks[0].x_train[:1]).shape[1]
                for width in (1024, 2048):
                    e = RandomExpansion(d_in, width, seed)
                    out.append((f"{tissue} expand {width:5}", lambda x, e=e, r=raw: e(r(x))))
    pixels = stream.tasks[0].x_train[0].numel()
    for width in (1280, 2048):
        e = RandomExpansion(pixels, width, seed)
        out.append(
            (f"random ReLU layer over the pixels, width {width:5}", lambda x, e=e: e(x.flatten(1)))
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stream", default="split-digits", choices=("split-digits", "split-mnist"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ridges", default="1e-2,1e-3,1e-4,1e-5")
    a = p.parse_args()
    torch.set_num_threads(1)
    ridges = [float(r) for r in a.ridges.split(",")]
    val, test = build_stream(a.stream, "class", validation=True), build_stream(a.stream, "class")
    x_fit, y_fit, x_val, y_val = joined(val)
    print(f"{a.stream}: validation accuracy % of one ridge fit on all tasks; ridges {ridges}")
    best: tuple[float, str, float] = (-1.0, "", 0.0)
    for name, fmap in designs(val, a.seed):
        f_fit, f_val = fmap(x_fit), fmap(x_val)
        scores = [accuracy(f_fit, y_fit, f_val, y_val, r) for r in ridges]
        print(f"  {name}  D={f_fit.shape[1]:5}: {' / '.join(f'{s:.1f}' for s in scores)}")
        # a tie goes to the design listed first (the simpler) and to the stronger ridge
        top = max(range(len(ridges)), key=lambda i: (scores[i], ridges[i]))
        if scores[top] > best[0]:
            best = (scores[top], name, ridges[top])
    score, name, ridge = best
    chosen = dict(designs(test, a.seed))[name]  # rebuilt from the whole training split
    x_tr, y_tr, x_te, y_te = joined(test)
    acc = accuracy(chosen(x_tr), y_tr, chosen(x_te), y_te, ridge)
    print(f"chosen on validation: {name.strip()}, ridge {ridge:g} (validation {score:.1f})")
    print(f"its test accuracy, scored once: {acc:.1f}")


if __name__ == "__main__":
    with torch.no_grad():
        main()

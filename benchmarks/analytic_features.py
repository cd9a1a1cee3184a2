"""Which features morpho's analytic heads should read: the tissue as born or trained on the
first task, every cell at every row or the pooled readout, with or without a random ReLU
expansion. Each is scored by one ridge fit on every task's training split at once (the
head the analytic learner reaches after the last task), on the test split.

    OMP_NUM_THREADS=1 python benchmarks/analytic_features.py --stream split-digits
    OMP_NUM_THREADS=1 python benchmarks/analytic_features.py --stream split-mnist
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from morpho.sims.analytic import AnalyticLearner, RandomExpansion, RidgeStats
from morpho.sims.continual import LearnConfig, Learner
from morpho.sims.morpho_cl import MorphoCLConfig
from morpho.sims.streams import build_stream


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stream", default="split-digits", choices=("split-digits", "split-mnist"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ridges", default="1e-5,1e-4,1e-3,1e-2")
    p.add_argument("--widths", default="0,1024,2048", help="random expansions of every cell")
    p.add_argument("--max-train", type=int, default=0, help="examples per task (0: all)")
    a = p.parse_args()
    torch.set_num_threads(1)
    stream = build_stream(a.stream, "class", max_train=a.max_train)
    x_tr = torch.cat([k.x_train for k in stream.tasks])
    y_tr = torch.cat([k.y_train for k in stream.tasks])
    x_te = torch.cat([k.x_test for k in stream.tasks])
    y_te = torch.cat([k.y_test for k in stream.tasks])
    ridges = [float(r) for r in a.ridges.split(",")]
    learn = LearnConfig(seed=a.seed)
    print(f"{a.stream}: test accuracy % of one ridge fit on all tasks; ridges {ridges}")
    for trained in (False, True):
        for cell_readout in (True, False):
            learner = AnalyticLearner(stream, learn, MorphoCLConfig(cell_readout=cell_readout))
            if trained:  # the first task by gradient (naive), then frozen
                naive = Learner(stream, learn)
                with torch.enable_grad():
                    naive.fit_task(0, stream.tasks[0])
                learner.model.load_state_dict(naive.model.state_dict())
            feats = [learner.raw_features(x) for x in (x_tr, x_te)]
            widths = [int(w) for w in a.widths.split(",")] if cell_readout else [0]
            for width in widths:
                f_tr, f_te = feats
                if width:
                    expand = RandomExpansion(f_tr.shape[1], width, a.seed)
                    f_tr, f_te = expand(f_tr), expand(f_te)
                stats = RidgeStats(f_tr.shape[1], 10)
                stats.add(f_tr, F.one_hot(y_tr, 10))
                scores = []
                for ridge in ridges:
                    w = stats.solve(ridge)
                    acc = ((f_te.double() @ w).argmax(1) == y_te).double().mean()
                    scores.append(f"{100 * float(acc):.1f}")
                print(
                    f"  tissue {'trained on task 0' if trained else 'as born':17} "
                    f"{'every cell' if cell_readout else 'pooled':10} "
                    f"expand {width or '-':>5}  D={f_tr.shape[1]:5}: {' / '.join(scores)}",
                    flush=True,
                )


if __name__ == "__main__":
    with torch.no_grad():
        main()

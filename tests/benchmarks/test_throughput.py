"""The timed step of the throughput benchmarks trains on the run's objective, not on the
bare cross-entropy: for a growing network it includes the cells' prediction loss and the
gate penalty, exactly as :meth:`morpho.trainer.Trainer.loss` computes them."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from morpho.network import Network, NetworkConfig
from morpho.trainer import TrainConfig, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from throughput import RandomTokens, objective  # noqa: E402


def test_the_timed_loss_is_the_trainers_objective() -> None:
    torch.manual_seed(0)
    net = Network(NetworkConfig(vocab_size=16, d_cell=8, level_sizes=(2, 2), n_heads=2))
    x, y = RandomTokens(16).batch("train", 2, 8, torch.Generator().manual_seed(0))
    loss = objective(net, 16, torch.device("cpu"))(x, y)
    reference = Trainer(net, RandomTokens(16), TrainConfig()).loss(x, y)[0]
    cross_entropy = F.cross_entropy(net(x).flatten(0, 1), y.flatten())
    assert torch.equal(loss, reference)
    assert float(loss) > float(cross_entropy) + 1e-6  # the auxiliary terms are in it

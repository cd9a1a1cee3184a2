"""Laws of the wide-stream cell type (``"wide"``, :mod:`morpho.cells_wide`) in the engine.

The edit laws common to every cell type (split / insert / remove / connect / disconnect,
optimizer state) run on it through ``CELL_TYPES_UNDER_TEST``; here the ones of its own:

* the chunked selective recurrence equals the step-by-step one;
* the network is causal (a later token never changes an earlier logit);
* a cell born in series (``morpho.insert``) has a zero write projection: the function is
  kept, and the newborn learns (its write projection gets a gradient);
* a zero-strength edge (``morpho.connect``) preserves the function and gets a gradient;
* the stream is ``d_stream`` wide, the thermodynamic cell refuses a stream wider than it;
* the trainer trains it (the loss falls).
"""

from __future__ import annotations

import pytest
import torch
from conftest import VOCAB, param_groups, tiny_net, tokens

import morpho
from morpho.cells_wide import selective_recurrence
from morpho.network import NetworkConfig
from morpho.tissue import HIDDEN
from morpho.trainer import TrainConfig, Trainer


def wide_net(**kw: object) -> morpho.Network:
    net = tiny_net(cell_type="wide", **kw)
    with torch.no_grad():  # a trained-looking predictor: surprise (hence the gate) varies
        net.banks["w_pred"].normal_(0, 0.5)
    return net


def hidden_id(net: morpho.Network) -> int:
    return int(net.tissue.cell_id[(net.tissue.role == HIDDEN).nonzero()[0, 0]])


def test_chunked_recurrence_matches_the_sequential_one() -> None:
    gen = torch.Generator().manual_seed(0)
    for T in (1, 7, 16, 37):
        u = torch.randn(2, 3, T, 5, generator=gen)
        log_a = -torch.rand(2, 3, T, 5, generator=gen) * 3
        h, ref = torch.zeros(2, 3, 5), []
        for t in range(T):
            h = log_a[:, :, t].exp() * h + u[:, :, t]
            ref.append(h)
        torch.testing.assert_close(selective_recurrence(u, log_a, chunk=4), torch.stack(ref, 2))


@pytest.mark.parametrize("recurrence", ["selective", "lti"])
def test_causal(recurrence: str) -> None:
    net = wide_net(cell_options={"recurrence": recurrence})
    x = tokens(0, seq_len=9)
    y = x.clone()
    y[:, 5:] = (y[:, 5:] + 1) % VOCAB
    with torch.no_grad():
        a, b = net(x), net(y)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_birth_in_series_has_a_zero_write_is_identity_and_learns() -> None:
    net = wide_net()
    opt = torch.optim.AdamW(param_groups(net), lr=1e-3)
    x = tokens(0)
    with torch.no_grad():
        before = net(x)
    levels = int(net.tissue.level.max())
    edit = morpho.insert(net, hidden_id(net), optimizer=opt)
    row = net.row_of(edit.info["new_cells"][0])
    assert int(net.tissue.level.max()) == levels + 1
    assert float(net.banks["w_write"][row].detach().abs().sum()) == 0.0
    logits = net(x)
    torch.testing.assert_close(logits, before, atol=1e-5, rtol=1e-5)
    logits.logsumexp(-1).sum().backward()
    assert float(net.banks["w_write"].grad[row].abs().sum()) > 0  # not a dead saddle


def test_zero_strength_edge_preserves_the_function_and_gets_a_gradient() -> None:
    net = wide_net()
    x = tokens(0)
    with torch.no_grad():
        before = net(x)
    src, dst = int(net.tissue.cell_id[0]), int(net.tissue.cell_id[-1])  # input → output
    edit = morpho.connect(net, src, dst)
    logits = net(x)
    torch.testing.assert_close(logits, before, atol=1e-6, rtol=1e-6)
    logits.logsumexp(-1).sum().backward()
    edge = net.edge_row_of(edit.info["new_edges"][0])
    assert float(net.banks["strength"].grad[edge].abs()) > 0


def test_the_stream_is_d_stream_wide_and_thermo_refuses_one() -> None:
    net = wide_net(d_stream=20)
    assert net.embed.shape == (VOCAB, 20) and net.head.shape == (20, VOCAB)
    assert net.banks["w_read"].shape[1:] == (20, 8) and net.banks["w_write"].shape[1:] == (8, 20)
    assert tiny_net().embed.shape == (VOCAB, 8)  # d_stream unset: the stream is d_cell wide
    with pytest.raises(ValueError, match="d_stream must be unset"):
        NetworkConfig(vocab_size=VOCAB, d_cell=8, d_stream=12)
    with pytest.raises(ValueError, match="recurrence"):
        NetworkConfig(cell_type="wide", cell_options={"recurrence": "lstm"})
    with pytest.raises(ValueError, match="clock_ratio must be 1"):
        NetworkConfig(cell_type="wide", clock_ratio=2)


def test_trains_through_the_trainer() -> None:
    class Toy:  # a repeating sequence: easy to learn
        name, vocab_size = "toy", VOCAB

        def batch(self, split, batch_size, seq_len, generator):  # noqa: ANN001
            start = torch.randint(0, VOCAB, (batch_size, 1), generator=generator)
            ids = (start + torch.arange(seq_len + 1)) % VOCAB
            return ids[:, :-1], ids[:, 1:]

        def eval_batches(self, n_batches, batch_size, seq_len):  # noqa: ANN001
            gen = torch.Generator().manual_seed(1)
            return [self.batch("val", batch_size, seq_len, gen) for _ in range(n_batches)]

        def describe(self) -> dict:
            return {}

    net = wide_net()
    cfg = TrainConfig(steps=40, batch_size=4, seq_len=8, eval_every=20, eval_batches=2, warmup=5)
    trainer = Trainer(net, Toy(), cfg)
    first = trainer.evaluate()["val_bpc"]
    summary = trainer.fit()
    assert summary["best_val_bpc"] < first - 0.5

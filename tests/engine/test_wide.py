"""Laws of the wide-stream wiring (:mod:`morpho.wide`) and its growth edits.

* the chunked selective recurrence equals the step-by-step one;
* the network is causal (a later token never changes an earlier logit);
* a split (noise 0) preserves the function; noise breaks it;
* a cell born in series with a zero write projection is the identity, and learns;
* a zero-strength edge preserves the function and gets a gradient;
* widening the stream preserves the function, and the new channels get gradients;
* the trainer trains it (the loss falls).
"""

from __future__ import annotations

import pytest
import torch

from morpho.config import TrainConfig
from morpho.tissue import HIDDEN
from morpho.trainer import Trainer
from morpho.wide import WideConfig, WideNetwork, count_params, selective_recurrence, sized
from morpho.wide_edits import add_edge, insert_series, split_cell, widen_stream

VOCAB = 11


def wide_net(**kw: object) -> WideNetwork:
    cfg = dict(vocab_size=VOCAB, d_stream=12, d_cell=6, level_sizes=(2, 2, 1), seed=0)
    cfg.update(kw)
    net = WideNetwork(WideConfig(**cfg))  # type: ignore[arg-type]
    with torch.no_grad():  # a trained-looking predictor: surprise (hence the gate) varies
        net.banks["w_pred"].normal_(0, 0.5)
    return net


def tokens(seed: int = 0, batch: int = 2, seq_len: int = 9) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq_len), generator=torch.Generator().manual_seed(seed))


def hidden_row(net: WideNetwork) -> int:
    return int((net.tissue.role == HIDDEN).nonzero()[0, 0])


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
    net = wide_net(recurrence=recurrence)
    x = tokens()
    y = x.clone()
    y[:, 5:] = (y[:, 5:] + 1) % VOCAB
    with torch.no_grad():
        a, b = net(x), net(y)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_split_preserves_the_function_and_noise_breaks_it() -> None:
    net = wide_net()
    x = tokens()
    with torch.no_grad():
        before = net(x)
    for row in (0, hidden_row(net), net.tissue.num_nodes - 1):  # input, hidden, output
        n = net.tissue.num_nodes
        daughter = split_cell(net, row)
        assert net.tissue.num_nodes == n + 1 and daughter == row + 1
        with torch.no_grad():
            torch.testing.assert_close(net(x), before, atol=1e-5, rtol=1e-5)
    split_cell(net, hidden_row(net), noise=0.1)
    with torch.no_grad():
        assert not torch.allclose(net(x), before, atol=1e-4)


def test_zero_write_birth_in_series_is_identity_and_learns() -> None:
    net = wide_net()
    x = tokens()
    with torch.no_grad():
        before = net(x)
    levels = int(net.tissue.level.max())
    row = insert_series(net, hidden_row(net))
    assert int(net.tissue.level.max()) == levels + 1
    assert float(net.banks["w_write"][row].detach().abs().sum()) == 0.0
    logits = net(x)
    torch.testing.assert_close(logits, before, atol=1e-5, rtol=1e-5)
    logits.logsumexp(-1).sum().backward()
    assert float(net.banks["w_write"].grad[row].abs().sum()) > 0  # not a dead saddle


def test_zero_strength_edge_preserves_the_function_and_gets_a_gradient() -> None:
    net = wide_net(level_sizes=(2, 2, 2, 1))
    x = tokens()
    with torch.no_grad():
        before = net(x)
    add_edge(net, 0, 4)  # input cell → level-2 cell (a skip edge)
    logits = net(x)
    torch.testing.assert_close(logits, before, atol=1e-6, rtol=1e-6)
    logits.logsumexp(-1).sum().backward()
    assert float(net.banks["strength"].grad[-1].abs()) > 0
    with pytest.raises(ValueError, match="up a level"):
        add_edge(net, 4, 0)


def test_widen_stream_preserves_the_function_and_new_channels_learn() -> None:
    net = wide_net()
    x = tokens()
    with torch.no_grad():
        before = net(x)
    widen_stream(net, 4)
    assert net.cfg.d_stream == 16 and net.embed.shape == (VOCAB, 16)
    assert net.n_params() == count_params(net.cfg)
    logits = net(x)
    torch.testing.assert_close(logits, before, atol=1e-5, rtol=1e-5)
    logits.logsumexp(-1).sum().backward()
    assert float(net.banks["w_write"].grad[..., 12:].abs().sum()) > 0
    assert float(net.embed.grad[:, 12:].abs().sum()) > 0


def test_sized_fits_the_budget() -> None:
    cfg = sized(WideConfig(vocab_size=103), 130_000)
    assert (
        count_params(cfg)
        <= 130_000
        < count_params(cfg.__class__(**{**vars(cfg), "d_cell": cfg.d_cell + 2}))
    )
    with pytest.raises(ValueError, match="recurrence"):
        WideConfig(recurrence="lstm")


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

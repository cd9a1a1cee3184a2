"""Static baselines: sized to a parameter budget, causal, trained by the morpho Trainer."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_net

from morpho.sims.baselines import BASELINES, baseline_config, build_baseline, count_params
from morpho.trainer import TrainConfig, Trainer

VOCAB = 16


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("target", [20_000, 131_000, 840_000])
def test_baseline_hits_the_requested_parameter_count(name: str, target: int) -> None:
    cfg = baseline_config(name, vocab_size=96, target_params=target)
    assert abs(count_params(cfg) - target) <= 0.03 * target


def test_built_model_matches_its_counted_size_and_is_seeded() -> None:
    a = build_baseline("transformer", VOCAB, 20_000, seed=3)
    b = build_baseline("transformer", VOCAB, 20_000, seed=3)
    assert a.n_params() == count_params(a.cfg)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_unknown_baseline_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="expected one of: transformer, gru"):
        baseline_config("lstm", VOCAB, 10_000)


def _assert_causal(model: torch.nn.Module, vocab: int) -> None:
    """Changing the token at position t changes no logits before t (and some at t)."""
    model.eval()
    x = torch.randint(0, vocab, (2, 12), generator=torch.Generator().manual_seed(0))
    t = 7
    y = x.clone()
    y[:, t] = (x[:, t] + 1) % vocab
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[:, :t], b[:, :t], atol=1e-6)
    assert not torch.allclose(a[:, t], b[:, t], atol=1e-6)


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_are_causal(name: str) -> None:
    _assert_causal(build_baseline(name, VOCAB, 20_000, seed=0), VOCAB)


def test_morpho_network_is_causal() -> None:
    _assert_causal(tiny_net(), VOCAB)


class _Copy:
    """A toy task: the next token equals the current one shifted by one (learnable fast)."""

    name, vocab_size = "toy", VOCAB

    def batch(self, split, batch_size, seq_len, generator):  # type: ignore[no-untyped-def]
        start = torch.randint(0, VOCAB, (batch_size, 1), generator=generator)
        seq = (start + torch.arange(seq_len + 1)) % VOCAB
        return seq[:, :-1], seq[:, 1:]

    def eval_batches(self, n_batches, batch_size, seq_len):  # type: ignore[no-untyped-def]
        return [
            self.batch("val", batch_size, seq_len, torch.Generator().manual_seed(i))
            for i in range(n_batches)
        ]

    def describe(self) -> dict[str, object]:
        return {"task": self.name}


@pytest.mark.parametrize("name", BASELINES)
def test_trainer_trains_a_baseline(name: str) -> None:
    cfg = TrainConfig(
        steps=30,
        batch_size=8,
        seq_len=16,
        lr=1e-2,
        warmup=5,
        eval_every=20,
        eval_batches=2,
        log_every=10,
    )
    trainer = Trainer(build_baseline(name, VOCAB, 20_000), _Copy(), cfg)
    first = trainer.evaluate()["val_bpc"]
    summary = trainer.fit()
    assert summary["best_val_bpc"] < first - 1.0  # learns the shift from 4 bits down
    assert summary["cells"] is None and summary["gate_mean"] is None
    assert summary["train_flops"] == pytest.approx(
        3 * trainer.net.flops_per_token(16) * 30 * 8 * 16
    )


def test_trainer_rejects_a_model_without_the_protocol() -> None:
    with pytest.raises(TypeError, match="n_params"):
        Trainer(torch.nn.Linear(2, 2), _Copy(), TrainConfig())  # type: ignore[arg-type]


def test_transformer_init_is_sized_to_its_width() -> None:
    """Weights N(0, 1/fan_in) (residual projections also / sqrt(2·depth)), embeddings N(0, 1):
    at any width each block's branch starts at a fixed share of the unit-scale stream."""
    for target in (20_000, 400_000):
        model = build_baseline("transformer", 96, target, seed=0)
        depth = model.cfg.n_layer
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Linear):
                residual = name.endswith((".proj", ".out"))
                std = m.in_features**-0.5 / (2 * depth) ** (0.5 if residual else 0)
                assert float(m.weight.std()) == pytest.approx(std, rel=0.15), name
        assert float(model.embed.weight.std()) == pytest.approx(1.0, rel=0.1)
        x = torch.randint(0, 96, (4, 32), generator=torch.Generator().manual_seed(1))
        stream = model.embed(x)
        branch = model.blocks[0](stream) - stream
        assert 0.05 < float(branch.pow(2).mean().sqrt()) < 1.0


def test_stacking_doubles_the_depth_with_copied_weights_and_optimizer_state() -> None:
    import torch.nn.functional as F

    from morpho.sims.baselines import build_stack_peer, stack_blocks
    from morpho.trainer import build_optimizer

    model = build_stack_peer(VOCAB, 20_000, seed=0)
    full = build_baseline("transformer", VOCAB, 20_000, seed=0)
    opt = build_optimizer(model, TrainConfig())
    x = torch.randint(0, VOCAB, (2, 8), generator=torch.Generator().manual_seed(0))
    F.cross_entropy(model(x).flatten(0, 1), x.flatten()).backward()
    opt.step()
    depth = model.cfg.n_layer
    stack_blocks(model, opt)
    assert model.cfg == full.cfg and model.n_params() == full.n_params() == count_params(full.cfg)
    params = {id(p) for g in opt.param_groups for p in g["params"]}
    assert params == {id(p) for p in model.parameters()}
    for twin, original in zip(model.blocks[depth:], model.blocks[:depth], strict=True):
        for p, q in zip(twin.parameters(), original.parameters(), strict=True):
            assert p is not q and torch.equal(p, q)
            for key, value in opt.state[q].items():
                assert torch.equal(opt.state[p][key], value)
                assert opt.state[p][key] is not value
    F.cross_entropy(model(x).flatten(0, 1), x.flatten()).backward()
    opt.step()  # the optimizer steps every parameter of the doubled model
    assert not torch.equal(model.blocks[depth].fc.weight, model.blocks[0].fc.weight)

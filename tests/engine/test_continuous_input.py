"""The network's continuous-input seam: a linear input adapter and a once-per-sequence readout.

Laws: the adapter is exactly ``x @ embed``; a pooled readout is the full readout's last
(or mean) position; mitosis stays function-preserving through the adapter; bad inputs
are refused with one clear error; FLOPs count the adapter and a head run once per sequence.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from conftest import TINY

import morpho
from morpho.network import Network
from morpho.tissue import HIDDEN


def features(seed: int, batch: int = 3, seq_len: int = 6, k: int = 5) -> torch.Tensor:
    return torch.rand(batch, seq_len, k, generator=torch.Generator().manual_seed(seed))


def test_adapter_is_a_linear_map_of_the_features() -> None:
    net = Network(replace(TINY, input_dim=5))
    x = features(0)
    assert net.embed.shape == (5, TINY.width)
    torch.testing.assert_close(net.embed_inputs(x), x @ net.embed)
    assert net(x).shape == (3, 6, TINY.vocab_size)


@pytest.mark.parametrize("readout", ["last", "mean"])
def test_pooled_readout_reads_the_full_state_once(readout: str) -> None:
    full = Network(replace(TINY, input_dim=5))
    pooled = Network(replace(TINY, input_dim=5, readout=readout))
    pooled.load_state_dict(full.state_dict())
    x = features(1)
    with torch.no_grad():
        state = full.run(x).state
        expect = state[:, -1:] if readout == "last" else state.mean(1, keepdim=True)
        torch.testing.assert_close(pooled(x), full.head_logits(expect))
    assert pooled(x).shape == (3, 1, TINY.vocab_size)


def test_split_preserves_function_through_the_adapter() -> None:
    net = Network(replace(TINY, input_dim=5, readout="last"))
    x = features(2)
    with torch.no_grad():
        before = net(x)
    roles = zip(net.cell_ids(), net.tissue.role.tolist(), strict=True)
    cell = [c for c, r in roles if r == HIDDEN][0]
    morpho.split(net, cell, noise=0.0)
    with torch.no_grad():
        torch.testing.assert_close(net(x), before, rtol=1e-5, atol=1e-5)


def test_bad_inputs_are_refused_with_the_expected_shape() -> None:
    net = Network(replace(TINY, input_dim=5))
    with pytest.raises(ValueError, match=r"\(B, T, 5\) float"):
        net(torch.zeros(2, 6, 4))
    with pytest.raises(ValueError, match=r"\(B, T, 5\) float"):
        net(torch.zeros(2, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="tokens must be a"):
        Network(TINY)(torch.zeros(2, 6, 5))
    with pytest.raises(ValueError, match="readout one of: all, last, mean"):
        replace(TINY, readout="first")


def test_flops_count_the_adapter_and_a_head_run_once_per_sequence() -> None:
    tokens = Network(TINY)
    pooled = Network(replace(TINY, input_dim=5, readout="last"))
    d, V, T = TINY.width, TINY.vocab_size, 8
    body = tokens.flops_per_token(T) - 2 * d * V
    assert pooled.flops_per_token(T) == pytest.approx(body + 2 * 5 * d + 2 * d * V / T)

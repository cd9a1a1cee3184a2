"""Checkpoints: round trips, checksum rejection with fallback, refusal of crafted pickles."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
import torch

import morpho
from morpho.checkpoint import (
    MAGIC,
    latest_checkpoint,
    load_checkpoint,
    load_network,
    network_from_payload,
    save_checkpoint,
)


def _grown_net_and_opt():
    torch.manual_seed(0)
    net = morpho.Network(morpho.NetworkConfig(vocab_size=11, d_cell=8, n_heads=1))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    tokens = torch.randint(0, 11, (2, 9))
    for cell in (4, 6):
        net(tokens).logsumexp(-1).mean().backward()
        opt.step()
        opt.zero_grad()
        morpho.split(net, cell, optimizer=opt, noise=0.01)
    morpho.connect(net, 0, net.cell_ids()[-1], optimizer=opt)
    return net, opt, tokens


def test_round_trip_restores_topology_function_and_optimizer(tmp_path):
    net, opt, tokens = _grown_net_and_opt()
    save_checkpoint(tmp_path / "c.pt", net, opt, step=7, extra={"note": "x"})
    net2, payload = load_network(tmp_path / "c.pt")
    assert net2.cell_ids() == net.cell_ids()
    assert torch.equal(net2.tissue.edge_index, net.tissue.edge_index)
    assert net2.step == 7 and payload["extra"] == {"note": "x"}
    with torch.no_grad():
        assert torch.equal(net(tokens), net2(tokens))
    opt2 = torch.optim.AdamW(net2.parameters(), lr=1e-2)
    opt2.load_state_dict(payload["optimizer"])
    for (n1, p1), (n2, p2) in zip(net.named_parameters(), net2.named_parameters(), strict=True):
        assert n1 == n2
        for key, value in opt.state[p1].items():
            assert torch.equal(value, opt2.state[p2][key]), (n1, key)


def test_truncated_and_bitflipped_files_are_rejected_and_previous_used(tmp_path, capsys):
    net, opt, _ = _grown_net_and_opt()
    folder = tmp_path / "checkpoints"
    save_checkpoint(folder / "step_00000010.pt", net, opt, step=10)
    save_checkpoint(folder / "step_00000020.pt", net, opt, step=20)
    save_checkpoint(folder / "step_00000030.pt", net, opt, step=30)
    raw = (folder / "step_00000030.pt").read_bytes()
    (folder / "step_00000030.pt").write_bytes(raw[: len(raw) // 2])  # truncated
    raw = bytearray((folder / "step_00000020.pt").read_bytes())
    raw[len(raw) // 3] ^= 0x10  # one flipped bit
    (folder / "step_00000020.pt").write_bytes(bytes(raw))
    for name in ("step_00000030.pt", "step_00000020.pt"):
        with pytest.raises(ValueError, match="truncated or corrupted"):
            load_checkpoint(folder / name)
    path, payload = latest_checkpoint(folder)
    assert path.name == "step_00000010.pt" and payload["step"] == 10
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("checksum mismatch" in line for line in err)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-checkpoint",))


def test_crafted_pickle_is_refused_even_with_a_valid_checksum(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    buffer = io.BytesIO()
    torch.save({"format": 1, "model": _Exploit()}, buffer)
    body = buffer.getvalue()
    (tmp_path / "evil.pt").write_bytes(MAGIC + body + hashlib.sha256(body).digest())
    with pytest.raises(ValueError, match="cannot be read safely"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned-by-checkpoint").exists()


def test_foreign_files_get_one_line_errors(tmp_path):
    torch.save({"a": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="bad header"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="no valid checkpoint"):
        latest_checkpoint(tmp_path)


def test_a_checkpoints_network_config_goes_through_the_config_coercer(tmp_path):
    net, opt, _ = _grown_net_and_opt()
    save_checkpoint(tmp_path / "c.pt", net, opt, step=1)
    payload = load_checkpoint(tmp_path / "c.pt")
    assert network_from_payload(payload).cfg == net.cfg  # lists come back as tuples
    bad = {**payload, "network_config": {**payload["network_config"], "d_cel": 8}}
    with pytest.raises(ValueError, match="unknown config key checkpoint network_config.d_cel"):
        network_from_payload(bad)
    bad = {**payload, "network_config": {**payload["network_config"], "d_cell": "8"}}
    with pytest.raises(ValueError, match="network_config.d_cell: expected int, got '8'"):
        network_from_payload(bad)

"""CPU and CUDA agree: deselected by default; run with ``pytest -m gpu`` on a GPU."""

from __future__ import annotations

import pytest
import torch

import morpho
from morpho.network import Network, NetworkConfig

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CONFIGS = {
    "default": {},
    "mechanisms": {"clock_ratio": 2, "ponder_max": 2, "demand_weight": 0.5},
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_forward_and_gradients_match_cpu(name: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = NetworkConfig(vocab_size=40, **CONFIGS[name])
    cpu, gpu = Network(cfg), Network(cfg).cuda()
    x = torch.randint(0, 40, (4, 32), generator=torch.Generator().manual_seed(0))
    out_cpu, out_gpu = cpu(x), gpu(x.cuda())
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, atol=2e-4, rtol=2e-4)
    out_cpu.logsumexp(-1).mean().backward()
    out_gpu.logsumexp(-1).mean().backward()
    for (k, p), q in zip(cpu.named_parameters(), gpu.parameters(), strict=True):
        if p.grad is None:  # e.g. the predictor: trained by the local loss only
            assert q.grad is None, k
            continue
        torch.testing.assert_close(q.grad.cpu(), p.grad, atol=1e-3, rtol=1e-3, msg=k)


def test_edits_and_optimizer_state_match_cpu() -> None:
    cfg = NetworkConfig(vocab_size=40)
    nets = {"cpu": Network(cfg), "cuda": Network(cfg).cuda()}
    opts = {k: torch.optim.AdamW(n.parameters(), lr=1e-2) for k, n in nets.items()}
    x = torch.randint(0, 40, (4, 32), generator=torch.Generator().manual_seed(0))
    for step in range(6):
        for k, net in nets.items():
            opts[k].zero_grad()
            net(x.to(k)).logsumexp(-1).mean().backward()
            opts[k].step()
            if step == 2:
                morpho.split(net, 5, optimizer=opts[k])
                morpho.insert(net, 3, optimizer=opts[k])
                morpho.connect(net, 0, 10, optimizer=opts[k])
    for (k, p), q in zip(nets["cpu"].named_parameters(), nets["cuda"].parameters(), strict=True):
        torch.testing.assert_close(q.detach().cpu(), p.detach(), atol=1e-3, rtol=1e-3, msg=k)
        for key, v in opts["cpu"].state[p].items():
            w = opts["cuda"].state[q][key]
            torch.testing.assert_close(w.cpu(), v, atol=1e-3, rtol=1e-3, msg=f"{k}.{key}")


def test_sync_free_training_step_never_waits_for_the_device() -> None:
    """With train.sync_free, a non-logging step runs under CUDA's sync debug mode 'error'."""
    from morpho.config import RunConfig
    from morpho.grow import build_network, build_task
    from morpho.trainer import Trainer

    cfg = RunConfig.preset("small").merged({"train": {"device": "cuda", "sync_free": True}})
    task = build_task(cfg)
    trainer = Trainer(build_network(cfg, task.vocab_size), task, cfg.train)
    for _ in range(3):  # warm-up: allocator, kernels, optimizer state
        trainer.train_step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        trainer.train_step()
    finally:
        torch.cuda.set_sync_debug_mode("default")

"""The KNIFE entropy of the cells' outputs as the ``S`` term of growth's free energy.

knife = KnifeEntropy(generator)        # the scheduler's generator (shared stream)
knife.refresh(net, x, step, interval)  # every interval steps and after each edit
extra = knife.stats()                  # {"repr_entropy": (N,)} for the EMAs
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from morpho import distributed
from morpho.entropy import representation_entropy
from morpho.network import Network


class KnifeEntropy:
    """(N,) KNIFE entropies of the cells' outputs, in nats per channel, kept up to date."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator
        self.value: Tensor | None = None

    def refresh(self, net: Network, x: Tensor, step: int, interval: int) -> None:
        """Measure again every ``interval`` steps and whenever the rows changed."""
        stale = self.value is None or self.value.shape[0] != net.tissue.num_nodes
        if stale or step % interval == 0:
            self.value = self.measure(net, x)

    @torch.no_grad()
    def measure(self, net: Network, x: Tensor) -> Tensor:
        """On up to 8 sequences of a batch, per channel (S on the scale of U whatever
        ``d_cell``): one extra no-grad forward, whose record is dropped."""
        outputs = net.run(x[:8], capture=True).captured[-1].outputs  # the last ACT pass
        with torch.enable_grad():
            value = representation_entropy(outputs, generator=self.generator)
        value = (value / outputs[0].shape[-1]).detach()
        distributed.all_reduce_mean_([value])  # every rank decides from the same F
        return value

    def stats(self, device: torch.device) -> dict[str, Tensor]:
        return {} if self.value is None else {"repr_entropy": self.value.to(device)}

    def flush(self, net: Network) -> None:
        """Write the latest entropies into the tissue (``tissue.repr_entropy``)."""
        if self.value is not None and self.value.shape[0] == net.tissue.num_nodes:
            net.tissue["repr_entropy"] = self.value.detach().cpu().float().clone()

    def state_dict(self) -> dict[str, Any]:
        return {"repr": torch.zeros(0) if self.value is None else self.value.cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "repr" in state and state["repr"].numel():
            self.value = state["repr"].clone()

"""Experience replay for text streams: a memory of stored training text, sampled as windows.

At the end of a domain, :meth:`TextMemory.add` keeps a fraction of its training text as
``chunks`` spans spread evenly over it (the stored text a replay baseline is charged
for), or :meth:`TextMemory.add_windows` keeps windows the network sampled of itself
(self-replay, :mod:`morpho.plasticity`: no stored text); later batches mix in windows
drawn uniformly from every stored span (:class:`morpho.sims.lang_domains.LangDomainsTask`
does the mixing, ``task_options.replay`` and ``replay_share``).

    memory = TextMemory()
    memory.add(ids, fraction=0.1)                 # ids: (n,) long character ids
    w, domain = memory.windows(8, 64, generator)   # (8, 65) windows, (8,) their domains
"""

from __future__ import annotations

import torch
from torch import Tensor

CHUNKS = 32  # spans each stored domain is kept as (spread over its text)


class TextMemory:
    """Stored spans of text per domain; see the module docstring."""

    def __init__(self) -> None:
        self.spans: list[list[Tensor]] = []  # per entry (a domain), its stored spans
        self.domains: list[int] = []  # the domain of each entry

    def add_windows(self, windows: Tensor, domain: int) -> None:
        """Keep ``windows`` (n, T + 1) as one entry of ``domain`` (e.g. text the network
        sampled of itself: self-replay stores no training text)."""
        self.spans.append(list(windows))
        self.domains.append(domain)

    def __len__(self) -> int:
        return len(self.spans)

    def add(self, ids: Tensor, fraction: float, chunks: int = CHUNKS) -> None:
        """Keep ``fraction`` of ``ids`` as ``chunks`` equal spans at evenly spaced offsets."""
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
        span = max(int(len(ids) * fraction) // chunks, 2)
        starts = torch.linspace(0, len(ids) - span, chunks).long()
        self.spans.append([ids[s : s + span] for s in starts.tolist()])
        self.domains.append(len(self.domains))

    def stored_chars(self) -> int:
        return sum(len(s) for spans in self.spans for s in spans)

    def windows(self, n: int, seq_len: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``n`` windows of ``seq_len + 1`` ids from uniformly drawn domains and spans.

        Shapes: windows (n, seq_len + 1), domains (n,).
        """
        if not self.spans:
            raise ValueError("the memory is empty; expected add() before windows()")
        rows, doms = [], []
        for _ in range(n):
            d = int(torch.randint(0, len(self.spans), (1,), generator=generator))
            s = self.spans[d][int(torch.randint(0, len(self.spans[d]), (1,), generator=generator))]
            rows.append(self._window(s, seq_len, generator))
            doms.append(self.domains[d])
        return torch.stack(rows), torch.tensor(doms)

    @staticmethod
    def _window(span: Tensor, seq_len: int, generator: torch.Generator) -> Tensor:
        """One window of ``seq_len + 1`` ids from ``span`` (cycled when the span is shorter)."""
        if len(span) > seq_len + 1:
            start = int(torch.randint(0, len(span) - seq_len - 1, (1,), generator=generator))
            return span[start : start + seq_len + 1]
        return span.repeat(seq_len // len(span) + 2)[: seq_len + 1]

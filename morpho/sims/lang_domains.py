"""Language domains one after another, as one task of ``morpho grow`` (a continual stream).

Domains (each from text that ships with an installed package, or a user's file):
    ``pydoc``  — Python's ``pydoc_data.topics`` prose (≈0.47 M characters: all of it);
    ``stdlib`` — the standard library's top-level ``.py`` source (capped at ``domain_chars``);
    ``csv``    — the numeric tables inside scikit-learn's wheel (``sklearn/datasets/data``,
                 ≈0.43 M characters: digits, commas, points — statistics far from prose
                 and code);
    ``--data a.txt,b.txt`` — each UTF-8 file one more domain, after the named ones.

Training batches come from domain ``step // steps_per_domain`` (the trainer calls
:meth:`LangDomainsTask.at_step`; the last domain from then on), with no domain id
(``lang-domains``: domain-incremental) or with it (``lang-domains-til``: task-incremental,
the first input token of every window is the domain's own token). ``joint=True`` draws every
batch from all domains (the joint-training reference). Each domain holds out its last
``val_chars`` characters; every evaluation scores ``n_batches`` fixed windows *of each
domain*, and ``eval_domains`` names the domain of each batch, so the trainer logs
``val_bpc/<domain>`` beside the all-domain mean ``val_bpc`` (:mod:`morpho.sims.cl_runs`
turns those lines into the continual-learning matrix).

``replay`` > 0 keeps that fraction of each finished domain's training text
(:class:`morpho.sims.replay.TextMemory`) and mixes ``replay_share`` of every later batch
from it (experience replay; Chaudhry et al. 2019, "On tiny episodic memories").

    task = LangDomainsTask(steps_per_domain=400)
    task.at_step(500)                                  # the second domain
    x, y = task.batch("train", 16, 64, torch.Generator().manual_seed(0))   # (16, 64) each
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from morpho.sims.lang import CharVocab, load_corpus, read_text_file
from morpho.sims.replay import TextMemory
from morpho.sims.streams import LANG_CHARS, stdlib_source

DOMAINS = ("pydoc", "stdlib", "csv")
MAX_DOMAINS = 8  # domain tokens reserved in the vocabulary (ids after the characters)


def csv_tables() -> str:
    """The numeric tables of scikit-learn's bundled datasets, one after another."""
    import sklearn

    root = Path(sklearn.__file__).parent / "datasets" / "data"
    parts = []
    for p in sorted(root.glob("*.csv*")):
        raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        parts.append(raw.decode("utf-8"))
    return "\n".join(parts)


def domain_text(name: str, n_chars: int) -> str:
    """The first ``n_chars`` characters of domain ``name`` (``ValueError`` listing them)."""
    if name == "pydoc":
        return load_corpus("pydoc")[0][:n_chars]
    if name == "stdlib":
        return stdlib_source(n_chars)
    if name == "csv":
        return csv_tables()[:n_chars]
    raise ValueError(f"unknown language domain {name!r}; expected one of: {', '.join(DOMAINS)}")


class LangDomainsTask(CharVocab):
    """Next-character prediction over a stream of domains; see the module docstring."""

    name = "lang-domains"
    kind = "lm"
    domain_token = False  # task-incremental: the first input token names the domain

    def __init__(
        self,
        domains: str = "pydoc,stdlib,csv",
        data: str | None = None,
        steps_per_domain: int = 400,
        domain_chars: int = 1_000_000,
        val_chars: int = 40_000,
        joint: bool = False,
        replay: float = 0.0,
        replay_share: float = 0.25,
    ) -> None:
        self._check(steps_per_domain, domain_chars, val_chars, replay, replay_share)
        named = [d for d in domains.split(",") if d]
        for d in named:
            if d not in DOMAINS:
                known = ", ".join(DOMAINS)
                raise ValueError(f"unknown language domain {d!r}; expected one of: {known}")
        files = [f for f in (data or "").split(",") if f]
        for f in files:  # before the named domains are read (seconds)
            if not Path(f).is_file():
                raise ValueError(f"--data file {f!r} does not exist; expected a UTF-8 text file")
        names = named + files
        if not names or len(names) > MAX_DOMAINS or len(set(names)) != len(names):
            raise ValueError(
                f"expected 1 to {MAX_DOMAINS} distinct domains (of {', '.join(DOMAINS)} or "
                f"--data files); got {names}"
            )
        super().__init__(LANG_CHARS + "".join(chr(1 + i) for i in range(MAX_DOMAINS)))
        self.domains = named + [Path(n).name for n in names[len(named) :]]
        self.splits = [
            self._split(n, i < len(named), domain_chars, val_chars) for i, n in enumerate(names)
        ]
        self.steps_per_domain, self.joint = steps_per_domain, joint
        self.replay, self.replay_share = replay, replay_share
        self.memory = TextMemory()
        self.current = 0
        self.eval_domains: list[str] = []  # the domain of each evaluation batch

    @staticmethod
    def _check(steps: int, chars: int, val: int, replay: float, share: float) -> None:
        for name, v, lo in (("steps_per_domain", steps, 1), ("domain_chars", chars, 1000)):
            if v < lo:
                raise ValueError(f"{name} must be >= {lo}; got {v}")
        if not 0 < val < chars:
            raise ValueError(f"val_chars must be in (0, domain_chars={chars}); got {val}")
        if not 0 <= replay <= 1:
            raise ValueError(f"replay must be in [0, 1]; got {replay}")
        if not 0 < share < 1:
            raise ValueError(f"replay_share must be in (0, 1); got {share}")

    def _split(self, name: str, named: bool, n_chars: int, val_chars: int) -> tuple[Tensor, Tensor]:
        text = domain_text(name, n_chars) if named else read_text_file(name)[:n_chars]
        ids = self.encode(text)
        if len(ids) < 2 * val_chars:
            raise ValueError(
                f"domain {name!r} has {len(ids)} characters; expected at least twice "
                f"val_chars = {2 * val_chars}"
            )
        return ids[:-val_chars], ids[-val_chars:]

    @property
    def n_chars(self) -> int:
        return len(LANG_CHARS)

    def at_step(self, step: int) -> None:
        """Train on domain ``step // steps_per_domain``; a finished domain enters the memory."""
        now = min(step // self.steps_per_domain, len(self.domains) - 1)
        if self.replay and now > self.current:  # resumed runs refill it the same way
            for d in range(len(self.memory), now):
                self.memory.add(self.splits[d][0], self.replay)
        self.current = now

    def remember(self, windows: Tensor) -> None:
        """Keep (n, T + 1) windows the network sampled of itself before a new domain
        (self-replay): mixed into later batches like stored text."""
        self.memory.add_windows(windows, self.current)

    def batch(
        self, split: str, batch_size: int, seq_len: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Training windows of the current domain (all domains when ``joint``), with
        replayed windows in the first rows; ``val`` windows of the current domain."""
        if split not in ("train", "val"):
            raise ValueError(f"unknown split {split!r}; expected one of: train, val")
        index = 0 if split == "train" else 1
        if split == "train" and self.joint:
            picks = torch.randint(0, len(self.domains), (batch_size,), generator=generator)
            rows = [
                self._windows(self.splits[d][0], 1, seq_len, generator, d) for d in picks.tolist()
            ]
            return torch.cat([r[0] for r in rows]), torch.cat([r[1] for r in rows])
        n_old = 0
        if split == "train" and len(self.memory):
            n_old = round(batch_size * self.replay_share)
        d = self.current
        x, y = self._windows(self.splits[d][index], batch_size - n_old, seq_len, generator, d)
        if n_old:
            w, dom = self.memory.windows(n_old, seq_len, generator)
            xo, yo = self._tokens(w, dom)
            x, y = torch.cat([xo, x]), torch.cat([yo, y])
        return x, y

    def _windows(
        self, ids: Tensor, n: int, seq_len: int, generator: torch.Generator, domain: int
    ) -> tuple[Tensor, Tensor]:
        if len(ids) < seq_len + 2:
            raise ValueError(f"a domain split has {len(ids)} characters; expected >= {seq_len + 2}")
        starts = torch.randint(0, len(ids) - seq_len - 1, (n,), generator=generator)
        w = ids[starts[:, None] + torch.arange(seq_len + 1)]  # (n, T + 1)
        return self._tokens(w, torch.full((n,), domain))

    def _tokens(self, w: Tensor, domain: Tensor) -> tuple[Tensor, Tensor]:
        """(n, T + 1) windows → inputs, targets; the domain token first when given."""
        x, y = w[:, :-1].clone(), w[:, 1:]
        if self.domain_token:
            x[:, 0] = self.n_chars + domain
        return x, y

    def eval_batches(
        self, n_batches: int, batch_size: int, seq_len: int
    ) -> list[tuple[Tensor, Tensor]]:
        """``n_batches`` fixed validation batches of every domain, domain after domain."""
        out, names = [], []
        for d, (_, val) in enumerate(self.splits):
            if len(val) < seq_len + 2:
                raise ValueError(f"val_chars must be >= seq_len + 2 = {seq_len + 2}")
            starts = torch.linspace(0, len(val) - seq_len - 2, n_batches * batch_size).long()
            for s in starts.split(batch_size):
                w = val[s[:, None] + torch.arange(seq_len + 1)]
                out.append(self._tokens(w, torch.full((len(s),), d)))
                names.append(self.domains[d])
        self.eval_domains = names
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "task": self.name,
            "domains": self.domains,
            "steps_per_domain": self.steps_per_domain,
            "train_chars": {n: len(s[0]) for n, s in zip(self.domains, self.splits, strict=True)},
            "val_chars": {n: len(s[1]) for n, s in zip(self.domains, self.splits, strict=True)},
            "domain_token": self.domain_token,
            "joint": self.joint,
            "replay": self.replay,
            "replay_share": self.replay_share,
        }


class LangDomainsTilTask(LangDomainsTask):
    """The task-incremental stream: every window starts with its domain's token."""

    name = "lang-domains-til"
    domain_token = True

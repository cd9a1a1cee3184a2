"""The network: token embedding → input cells → hidden levels (a DAG) → output cells → logits.

Parameters live in *banks*: one ``nn.Parameter`` per kind of weight, stacked along the cell
(or edge) dimension. Rows are kept sorted by level, so the cells of a level are a
contiguous slice of every bank and run as one batched call of their cell type. The forward
loops over levels and over (source level, target level) pairs — never over cells or edges:
a dense pair is one (n_target, n_source) strength matrix times the stacked source outputs,
a sparse one a gather, scale and scatter-add of its edges (``DENSE_AGGREGATION``).

    net = Network(NetworkConfig(vocab_size=96))
    logits = net(tokens)                  # (B, T) long -> (B, T, V)
    net.tissue                            # the torch_geometric Data (see morpho.tissue)
    out = net.run(tokens, capture=True)   # everything the forward computed (morpho.output):
    out.stats["gate_mean"]                # (N,) per-cell statistics
    out.captured[0].inputs[k].grad        # per level: inputs x (grad retained), outputs y

Continuous inputs (``input_dim = k > 0``, e.g. image rows or patches): ``embed`` is then a
linear input adapter (k, d) instead of a token table, and ``net(x)`` takes (B, T, k) floats.
``readout = "last"`` (or ``"mean"``) reads the class of a whole sequence from its last
(or mean-pooled) position: logits (B, 1, V) against (B, 1) targets, so the same
cross-entropy serves next-token prediction and classification.

Only :func:`morpho.apply.apply_edit` changes the number of cells, edges or parameters; it
calls :meth:`Network.rebuild` afterwards, which recomputes the level plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from morpho.cells import CELL_TYPES, Bank, CellType, binary_entropy, rms_norm
from morpho.demand import top_down_demand
from morpho.halting import HaltingUnit, ponder_tissue
from morpho.output import Capture, Output
from morpho.tissue import INPUT, OUTPUT, check_tissue, seed_tissue, with_defaults

READOUTS = ("all", "last", "mean")  # where the head reads: every position, or once per sequence
EDGE_BANKS = ("strength",)
# The network's own per-cell bank: each cell's weight in the readout state (non-zero on
# output cells, the mean of them at the seed). An outgoing weight: daughters of a split
# share it, a cell born in series (never an output cell) gets none.
READOUT = Bank((), lambda n, gen: torch.zeros(n), series="zero", split="share")


@dataclass(frozen=True)
class NetworkConfig:
    """Shape of a network and its seed tissue."""

    vocab_size: int = 256  # tokens in the vocabulary (set by the task)
    d_cell: int = 32  # channels per cell
    d_stream: int | None = None  # width of embedding, edges, readout, head (None: d_cell)
    level_sizes: tuple[int, ...] = (2, 4, 4, 2)  # seed cells per level: inputs … outputs
    n_heads: int = 2  # attention heads of the geometric core
    mlp_ratio: int = 2  # hidden width of a cell's MLP, in multiples of d_cell
    cell_type: str = "thermo"  # registered cell type (morpho.cells.CELL_TYPES)
    cell_options: dict[str, Any] = field(default_factory=dict)  # the cell type's own settings
    seed_fan_in: int = 0  # 0: dense between seed levels; k: k random inputs per cell
    demand_weight: float = 0.0  # top-down demand: gate logit += w · gate EMA of the cells fed
    clock_ratio: int = 1  # hidden level k of the seed ticks every clock_ratio**k tokens (1: off)
    clock_max: int = 16  # slowest clock period, in tokens
    ponder_max: int = 1  # ACT: a token may pass through the tissue up to this often (1: off)
    ponder_eps: float = 0.01  # ACT: a token halts once its halting probabilities reach 1 - eps
    gate_skip: float = 0.0  # inference: tokens with gate < this skip the geometric core (0: off)
    gate_skip_backward: float = 0.0  # training: ... skip the core's backward (forward exact)
    input_dim: int = 0  # 0: (B, T) token ids into an embedding table; k: (B, T, k) features
    # through a linear input adapter (image rows or patches)
    readout: str = "all"  # logits at every position ("all": next-token), at the last one
    # ("last") or of the mean-pooled state ("mean"): one prediction per sequence
    seed: int = 0  # initialisation seed

    @property
    def width(self) -> int:  # the stream width: every edge, the embedding, readout, head
        return self.d_cell if self.d_stream is None else self.d_stream

    def seed_clock(self, level: int) -> int:
        """Clock period of seed level ``level``: 1 for inputs and outputs, else ratio^level."""
        io = level in (0, len(self.level_sizes) - 1)
        return 1 if io else min(self.clock_max, self.clock_ratio**level)

    def __post_init__(self) -> None:
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2; got {self.vocab_size}")
        if self.d_cell < 1 or self.width < 1:
            raise ValueError(f"d_cell, d_stream must be >= 1; got {self.d_cell}, {self.d_stream}")
        if len(self.level_sizes) < 2 or min(self.level_sizes) < 1:
            raise ValueError(f"level_sizes needs >= 2 levels of >= 1 cell; got {self.level_sizes}")
        if self.ponder_max < 1 or not 0 < self.ponder_eps < 1:
            got = f"{self.ponder_max}, {self.ponder_eps}"
            raise ValueError(f"ponder_max must be >= 1 and ponder_eps in (0, 1); got {got}")
        if self.clock_ratio < 1 or self.clock_max < 1:
            raise ValueError(
                f"clock_ratio and clock_max must be >= 1; got {self.clock_ratio}, {self.clock_max}"
            )
        if self.input_dim < 0 or self.readout not in READOUTS:
            raise ValueError(
                f"input_dim must be >= 0 and readout one of: {', '.join(READOUTS)}; "
                f"got {self.input_dim}, {self.readout!r}"
            )
        CELL_TYPES.get(self.cell_type).config_from(self)  # the cell type checks its settings


# a level pair is aggregated as one dense (n_target, n_source) strength matrix times the
# source outputs when the matrix has at most this many entries per edge: a matmul is far
# cheaper per entry than gathering, scaling and scattering a (B, T, d) message per edge
DENSE_AGGREGATION = 32


@dataclass
class Incoming:
    """The edges from one source level into a level (rows local to each level)."""

    source: int  # source level index
    src: Tensor  # (E_k,) source rows local to the source level
    dst: Tensor  # (E_k,) target rows local to this level
    dense: Tensor | None = None  # (E_k,) dst * n_source + src: entries of a dense matrix
    # (the edge-bank rows of the pair are gathered once per forward: Network._edge_order)


@dataclass
class LevelPlan:
    """Index tensors for one level: its row slice and its incoming edges per source level."""

    start: int
    end: int
    input_mask: Tensor | None  # (n, 1, 1, 1) float, 1 for input cells; None if none
    incoming: list[Incoming] = field(default_factory=list)
    readout: Tensor | None = None  # local rows of the level's output cells
    clock: int = 1  # the level's clock period in tokens
    raw_skip: Tensor | None = None  # (n,) bool, cells whose residual is the raw input


class Network(nn.Module):
    """A growing network of cells; see the module docstring."""

    def __init__(self, cfg: NetworkConfig, tissue: Data | None = None) -> None:
        """Build the seed tissue of ``cfg`` — or fresh parameters for a given ``tissue``
        (e.g. a grown run's final topology, trained from scratch as a fixed baseline)."""
        super().__init__()
        self.cfg = cfg
        self.cell: CellType = CELL_TYPES.get(cfg.cell_type).from_network(cfg)
        gen = torch.Generator().manual_seed(cfg.seed)
        d = cfg.width
        if tissue is None:
            tissue = seed_tissue(cfg.level_sizes, seed=cfg.seed, fan_in=cfg.seed_fan_in)
            per_level = torch.tensor([cfg.seed_clock(lv) for lv in range(len(cfg.level_sizes))])
            tissue.clock = per_level[tissue.level]
        self.tissue = with_defaults(tissue)
        rows = self._fresh_banks(gen)
        self.banks = nn.ParameterDict({k: nn.Parameter(v) for k, v in rows.items()})
        self.embed = nn.Parameter(self._fresh_embedding(gen))
        self.head_norm = nn.Parameter(torch.ones(d))
        self.head = nn.Parameter(torch.randn(d, cfg.vocab_size, generator=gen) / d**0.5)
        self.halt = HaltingUnit(d) if cfg.ponder_max > 1 else None
        self.step = 0  # training step, set by the trainer; stamps births of cells and edges
        self.sync_free = False  # set by the trainer: the forward never reads the device
        self.plan: list[LevelPlan] = []
        self.rebuild()

    def _fresh_banks(self, gen: torch.Generator) -> dict[str, Tensor]:
        """Fresh rows of every bank: the cell type's, the readout weights, edge strengths.
        Sets ``bank_specs``, the declaration of every per-cell bank (how edits treat it)."""
        t, d = self.tissue, self.cfg.d_cell
        declared = self.cell.banks(d)
        clash = sorted(set(declared) & {"readout", *EDGE_BANKS})
        if clash:
            raise ValueError(f"cell type {self.cfg.cell_type!r} declares reserved banks {clash}")
        self.bank_specs: dict[str, Bank] = {**declared, "readout": READOUT}
        rows = self.cell.init_rows(t.num_nodes, d, gen)
        is_output = t.role == OUTPUT
        rows["readout"] = READOUT.init(t.num_nodes, gen)
        rows["readout"][is_output] = 1.0 / int(is_output.sum())  # the mean of the outputs
        # edges start at 1/fan-in so every cell sees an input of unit scale
        fan_in = torch.bincount(t.edge_index[1], minlength=t.num_nodes).clamp(min=1)
        rows["strength"] = 1.0 / fan_in[t.edge_index[1]].float()
        return rows

    def _fresh_embedding(self, gen: torch.Generator) -> Tensor:
        """(V, d) token table of unit-variance rows, or a (k, d) input adapter whose output
        has about unit variance for unit-scale features (``input_dim = k``)."""
        cfg = self.cfg
        if not cfg.input_dim:
            return torch.randn(cfg.vocab_size, cfg.width, generator=gen)
        return torch.randn(cfg.input_dim, cfg.width, generator=gen) / cfg.input_dim**0.5

    # ----------------------------------------------------------------- structure
    def cell_ids(self) -> list[int]:
        """Stable ids of the live cells, in row order."""
        return self.tissue.cell_id.tolist()

    def row_of(self, cell_id: int) -> int:
        """Row of a live cell; ``ValueError`` if no live cell has that id."""
        hits = (self.tissue.cell_id == cell_id).nonzero()
        if hits.numel() == 0:
            raise ValueError(f"no live cell with id {cell_id}; live ids: {self.cell_ids()}")
        return int(hits[0, 0])

    def edge_row_of(self, edge_id: int) -> int:
        hits = (self.tissue.edge_id == edge_id).nonzero()
        if hits.numel() == 0:
            raise ValueError(f"no edge with id {edge_id}; edges: {self.tissue.edge_id.tolist()}")
        return int(hits[0, 0])

    def rebuild(self) -> None:
        """Recompute the level plan from the tissue (after every edit)."""
        t = self.tissue
        check_tissue(t)
        assert bool((t.level[1:] >= t.level[:-1]).all()), "rows must be sorted by level"
        device = self.embed.device
        levels, counts = t.level.unique_consecutive(return_counts=True)  # rows sorted by level
        ends = counts.cumsum(0)
        starts = (ends - counts).tolist()
        src, dst = t.edge_index
        # group the edges by (target level, source level) with one stable sort: each group is
        # a contiguous run, edges inside it in ascending edge order (the summation order)
        level_of_row = torch.repeat_interleave(torch.arange(len(counts)), counts)
        key = level_of_row[dst] * len(counts) + level_of_row[src]
        order = torch.sort(key, stable=True).indices
        group_keys, group_sizes = key[order].unique_consecutive(return_counts=True)
        groups: dict[int, list[tuple[int, Tensor]]] = {}
        for k, sel in zip(group_keys.tolist(), order.split(group_sizes.tolist()), strict=True):
            groups.setdefault(k // len(counts), []).append((k % len(counts), sel))
        plan: list[LevelPlan] = []
        edge_order: list[Tensor] = []  # edge rows in the order the forward visits them
        for li in range(len(counts)):
            start, end = starts[li], int(ends[li])
            is_input = (t.role[start:end] == INPUT).float()
            mask = is_input.view(-1, 1, 1, 1).to(device) if bool(is_input.any()) else None
            raw = t.raw_skip[start:end].bool()
            lp = LevelPlan(
                start,
                end,
                mask,
                clock=int(t.clock[start]),
                raw_skip=raw.to(device) if bool(raw.any()) else None,
            )
            for ki, sel in groups.get(li, []):
                s_local, d_local = src[sel] - starts[ki], dst[sel] - start
                n_src = int(counts[ki])
                dense = (end - start) * n_src <= DENSE_AGGREGATION * len(sel)
                lp.incoming.append(
                    Incoming(
                        ki,
                        s_local.to(device),
                        d_local.to(device),
                        (d_local * n_src + s_local).to(device) if dense else None,
                    )
                )
                edge_order.append(sel)
            out_local = (t.role[start:end] == OUTPUT).nonzero().flatten()
            if out_local.numel():
                lp.readout = out_local.to(device)
            plan.append(lp)
        self.plan = plan
        order = torch.cat(edge_order) if edge_order else torch.zeros(0, dtype=torch.long)
        self._edge_order = order.to(device)  # one gather of the edge bank per forward
        self._group_sizes = [len(sel) for sel in edge_order]
        self.levels = t.level.to(device)  # (N,) cell levels on the device (gate penalty)
        self.edge_index = t.edge_index.to(device)  # (2, E) on the device (demand, path norm)
        self.derived: dict[Any, Any] = {}  # caches of functions of the topology (path norm)
        self._gate_ema: tuple[Tensor, int, Tensor] | None = None  # (tissue's, version, copy)
        self._plan_device = device

    # ------------------------------------------------------------------- forward
    def forward(self, tokens: Tensor) -> Tensor:
        """Logits for next-token prediction (the by-products: :meth:`run`).

        Shapes:
            tokens: (B, T) long; returns (B, T, V).
        """
        return _logits(self.run(tokens))

    def run(self, tokens: Tensor, capture: bool = False) -> Output:
        """One forward with everything it computed: logits, state, aux loss, gate activity,
        per-cell statistics, the captures when ``capture`` is set, and the ACT record.

        Shapes:
            tokens: (B, T) long, or (B, T, k) float with ``input_dim = k``; ``logits``:
            (B, T, V), or (B, 1, V) with ``readout`` "last" or "mean".
        """
        if self._plan_device != self.embed.device:
            self.rebuild()  # the module was moved with .to(); index tensors follow
        return self.run_embedded(self.embed_inputs(tokens), capture)

    def embed_inputs(self, inputs: Tensor) -> Tensor:
        """(B, T) token ids through the table, or (B, T, k) features through the adapter:
        (B, T, d); ``ValueError`` on inputs of another shape or type."""
        k = self.cfg.input_dim
        if not k:
            if inputs.dim() != 2 or inputs.dtype != torch.long:
                got = f"{tuple(inputs.shape)} {inputs.dtype}"
                raise ValueError(f"tokens must be a (B, T) long tensor; got {got}")
            return self.embed[inputs]
        if inputs.dim() != 3 or inputs.shape[-1] != k or not inputs.is_floating_point():
            got = f"{tuple(inputs.shape)} {inputs.dtype}"
            raise ValueError(f"inputs must be a (B, T, {k}) float tensor; got {got}")
        return inputs.to(self.embed.dtype) @ self.embed

    def forward_embedded(self, emb: Tensor) -> Tensor:
        """Logits from embedded inputs (B, T, d) (task adapters use this)."""
        return _logits(self.run_embedded(emb))

    def run_embedded(self, emb: Tensor, capture: bool = False) -> Output:
        """:meth:`run` from embedded inputs (B, T, d)."""
        out = self.run_tissue(emb, capture)
        return replace(out, logits=self.head_logits(self.readout_state(out.state)))

    def readout_state(self, state: Tensor) -> Tensor:
        """Where the head reads (``cfg.readout``): (B, T, d) → (B, T, d) or (B, 1, d)."""
        if self.cfg.readout == "last":
            return state[:, -1:]
        if self.cfg.readout == "mean":
            return state.mean(1, keepdim=True)
        return state

    def forward_tissue(self, emb: Tensor) -> Tensor:
        """The tissue alone: (B, T, d) embedded inputs → (B, T, d) readout state."""
        return self.run_tissue(emb).state

    def run_tissue(self, emb: Tensor, capture: bool = False) -> Output:
        """The tissue alone, with its by-products (``logits`` is None).

        With ``capture``, :attr:`Output.captured` keeps every level's detached output ``y``
        and, when grad is enabled, its aggregated input ``x`` (its ``.grad`` retained:
        ∂L/∂x after backward); ``Σ ⟨∂L/∂x_b, y_a⟩`` is the gradient of a zero-strength edge
        a → b. With ``ponder_max > 1`` the tissue runs inside ACT (:func:`morpho.halting.
        ponder_tissue`): one capture per pass, statistics averaged over the passes.
        """
        if self.halt is None:
            return self._tissue_pass(emb, capture)
        cfg, one_pass = self.cfg, lambda inp: self._tissue_pass(inp, capture)
        act = (self.halt, cfg.ponder_max, cfg.ponder_eps)
        return ponder_tissue(one_pass, emb, *act, sync_free=self.sync_free)

    def _tissue_pass(self, emb: Tensor, capture: bool) -> Output:
        """One pass of the tissue over (B, T, d) inputs; see :meth:`run_tissue`."""
        B, T, d = emb.shape
        strength = self.banks["strength"]
        outs: list[Tensor] = []
        aux, gates, stats = [], [], []
        keep = capture and torch.is_grad_enabled()  # inputs with their gradients
        inputs: list[Tensor] = []
        readout = emb.new_zeros(B, T, d)
        # one split per bank: slicing per level would make autograd allocate a full-size
        # gradient per level and bank (SliceBackward); split's backward concatenates once
        sizes = [lp.end - lp.start for lp in self.plan]
        top_down = self.top_down_demand() if self.cfg.demand_weight else None
        chunks = {k: v.split(sizes) for k, v in self.banks.items() if k not in EDGE_BANKS}
        # one gather of the edge bank, split per (target, source) level pair
        group_strength = iter(strength.index_select(0, self._edge_order).split(self._group_sizes))
        for li, lp in enumerate(self.plan):
            n = lp.end - lp.start
            x = None if lp.input_mask is None else lp.input_mask * emb
            for inc in lp.incoming:
                s = next(group_strength)
                y_src = outs[inc.source]
                if inc.dense is not None:  # (n, n_src) strength matrix @ (n_src, B·T·d)
                    w = s.new_zeros(n * len(y_src)).index_add(0, inc.dense, s)
                    msg = (w.view(n, -1) @ y_src.reshape(len(y_src), -1)).view(n, B, T, d)
                    x = msg if x is None else x + msg
                else:
                    msg = y_src.index_select(0, inc.src) * s.view(-1, 1, 1, 1)
                    x = emb.new_zeros(n, B, T, d) if x is None else x
                    x = x.index_add(0, inc.dst, msg)  # (n, B, T, d)
            if x is None:  # a level no edge reaches (allowed transiently): zero input
                x = emb.new_zeros(n, B, T, d)
            if keep:
                if x.requires_grad:
                    x.retain_grad()
                inputs.append(x)
            demand = None if top_down is None else top_down[lp.start : lp.end].view(-1, 1, 1)
            banks = {k: v[li] for k, v in chunks.items()}
            o = self.cell.forward_level(banks, x, demand, clock=lp.clock, raw_skip=lp.raw_skip)
            outs.append(o.y)
            aux.append(o.aux_loss)
            gates.append(o.gate.mean(dim=(1, 2)))
            entropy = binary_entropy(o.gate_mean) if o.gate_entropy is None else o.gate_entropy
            stats.append((o.surprise, o.gate_mean, entropy))
            if lp.readout is not None:  # Σ over the level's output cells of w_c · y_c
                local = lp.readout
                w = chunks["readout"][li]
                w = w.new_zeros(n).index_put((local,), w.index_select(0, local))
                readout = readout + (w @ o.y.reshape(n, -1)).view(B, T, d)
        surprise, gate_mean, entropy = (torch.cat(s) for s in zip(*stats, strict=True))
        captured = (Capture(inputs, [y.detach() for y in outs]),) if capture else ()
        return Output(
            state=readout,
            aux_loss=torch.stack(aux).sum(),
            gate_activity=torch.cat(gates),
            stats={"surprise": surprise, "gate_mean": gate_mean, "gate_entropy": entropy},
            captured=captured,
        )

    def top_down_demand(self) -> Tensor:
        """(N,) top-down demand on each cell's gate (:func:`morpho.demand.top_down_demand`)."""
        return top_down_demand(self)

    def head_logits(self, state: Tensor) -> Tensor:
        """Readout state (B, T, d) → logits (B, T, V)."""
        return rms_norm(state) * self.head_norm @ self.head

    # ---------------------------------------------------------------- accounting
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def params_per_cell(self) -> Tensor:
        """(N,) parameters owned by each cell: its bank rows plus its incoming edges."""
        per_row = sum(v[0].numel() for k, v in self.banks.items() if k not in EDGE_BANKS)
        fan_in = torch.bincount(self.tissue.edge_index[1], minlength=self.tissue.num_nodes)
        return per_row + fan_in

    def charge(self, kind: str, flops: float) -> None:
        """Compute spent on this network outside its forwards (a growth probe's own passes):
        nothing here; a FLOP counter attached to it adds ``flops`` to ``kind``
        (:meth:`morpho.flops.FlopCounter.attach`)."""

    def flops_per_token(self, seq_len: int, gate: Tensor | float = 1.0, passes: int = 1) -> float:
        """Forward FLOPs per token. Each geometric core is charged its gate's open share:
        ``gate`` (N,) or a scalar (1: dense), e.g. a forward's ``stats["gate_mean"]``;
        ``passes``: the passes ACT ran (``Output.ponder.n_passes_run``)."""
        n = self.tissue.num_nodes
        open_share = float(torch.as_tensor(gate, dtype=torch.float).expand(n).sum()) if n else 0.0
        clocks, counts = self.tissue.clock.unique(return_counts=True)
        fixed = sum(
            int(c) * self.cell.flops_per_token(self.cfg.d_cell, seq_len, int(k))[0]
            for k, c in zip(clocks, counts, strict=True)
        )
        gated = self.cell.flops_per_token(self.cfg.d_cell, seq_len)[1]
        d = self.cfg.width
        edges = 2 * d * self.tissue.edge_index.shape[1]
        halting = 2 * d * passes if self.halt is not None else 0
        body = passes * (fixed + open_share * gated + edges) + halting
        return body + self.io_flops_per_token(seq_len)

    def io_flops_per_token(self, seq_len: int) -> float:
        """FLOPs per token outside the tissue: the input adapter (a table lookup: none) and
        the head (``2·d·V``, once per sequence with a pooled ``readout``)."""
        d, V = self.cfg.width, self.cfg.vocab_size
        adapter = 2 * self.cfg.input_dim * d
        head = 2 * d * V if self.cfg.readout == "all" else 2 * d * V / seq_len
        return adapter + head

    def snapshot(self, stats: dict[str, Tensor] | None = None) -> object:
        """A CPU copy of the tissue with edge ``strength``, ``n_params`` and, if given, a
        forward's per-cell statistics (``Output.stats``)."""
        t = self.tissue.clone()
        t.strength = self.banks["strength"].detach().cpu().clone()
        t.n_params = self.params_per_cell()
        for k, v in (stats or {}).items():
            t[k] = v.detach().cpu().clone()
        return t


def _logits(out: Output) -> Tensor:
    assert out.logits is not None  # a record made with the head
    return out.logits

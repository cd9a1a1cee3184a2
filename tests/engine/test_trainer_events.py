"""Every trainer event fires in a run, each with what it promises; the counters live in one
TrainerState that a checkpoint carries."""

from __future__ import annotations

import dataclasses

from morpho.config import RunConfig
from morpho.grow import grow
from morpho.trainer import Callback, StepResult, TrainerState

EVENTS = ("on_train_start", "wants_capture", "on_step_end", "on_eval", "on_edit", "on_train_end")
TINY = {
    "network": {"d_cell": 8, "n_heads": 1, "mlp_ratio": 1, "level_sizes": [1, 3, 3, 1]},
    "train": {"steps": 20, "batch_size": 4, "seq_len": 16, "eval_every": 10, "log_every": 5},
    "growth": {"interval": 5, "start": 5, "cooldown": 5, "mitosis": {"patience": 1}},
}


class Recorder(Callback):
    """Counts each event and checks what it receives."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = dict.fromkeys(EVENTS, 0)
        self.capture_asked: list[int] = []

    def on_train_start(self, trainer) -> None:
        self.calls["on_train_start"] += 1
        assert trainer.step == 0

    def wants_capture(self, trainer, step: int) -> bool:
        self.calls["wants_capture"] += 1
        assert step == trainer.step  # asked before the step runs
        self.capture_asked.append(step)
        return False

    def on_step_end(self, trainer, step: int, result: StepResult) -> None:
        self.calls["on_step_end"] += 1
        assert step == trainer.step and result.output is not None
        assert result.output.logits is not None and result.batch[0].shape == (4, 16)

    def on_eval(self, trainer, step: int, record: dict) -> None:
        self.calls["on_eval"] += 1
        assert record["kind"] == "eval" and record["step"] == step

    def on_edit(self, trainer, edit) -> None:
        self.calls["on_edit"] += 1
        assert trainer.state.n_edits >= 1

    def on_train_end(self, trainer, summary: dict) -> None:
        self.calls["on_train_end"] += 1
        assert summary["steps"] == 20


def test_every_trainer_event_fires(tmp_path) -> None:
    rec = Recorder()
    summary = grow(RunConfig.preset("small").merged(TINY), tmp_path / "run", callbacks=[rec])
    assert all(rec.calls[e] > 0 for e in EVENTS), rec.calls
    assert rec.calls["on_train_start"] == rec.calls["on_train_end"] == 1
    assert rec.calls["on_step_end"] == rec.calls["wants_capture"] == 20
    assert rec.capture_asked == list(range(20))
    assert rec.calls["on_eval"] == 1  # at step 10 (the final evaluation is not an eval event)
    assert rec.calls["on_edit"] == summary["edits"]
    assert {m for m in dir(Callback) if m.startswith(("on_", "wants_"))} == set(EVENTS)


def test_the_trainer_state_is_one_dataclass_that_round_trips() -> None:
    state = TrainerState(step=3, best_val_bpc=2.5, tokens_seen=10, n_edits=1)
    assert TrainerState(**dataclasses.asdict(state)) == state

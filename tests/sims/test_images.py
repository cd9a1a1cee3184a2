"""The image classification tasks (``--task digits|mnist``) and the trainer's classify path.

Laws: tokens are the image's pixels rearranged (rows, raster patches: a round trip); an
evaluation scores every example of its split, its accuracy the argmax count; a run writes
accuracy and loss (no bits per character) in every record a plot reads, the test split
scored once; bad options leave nothing on disk.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from morpho.cli import app
from morpho.config import RunConfig
from morpho.flops import FlopCounter
from morpho.grow import build_network, fit_to_task, grow
from morpho.rundir import read_jsonl
from morpho.sims.image_data import image_splits
from morpho.sims.images import DigitsTask, ImageTask, tokenize
from morpho.tasks import TASKS, task_kind, task_overrides
from morpho.trainer import Trainer

SHORT = {
    "train": {"steps": 30, "eval_every": 15, "log_every": 5},
    "growth": {"start": 10, "interval": 10},
}


@pytest.fixture(scope="module")
def digits() -> DigitsTask:
    return DigitsTask()


def test_patches_are_the_image_in_raster_order() -> None:
    images = torch.arange(2 * 4 * 6, dtype=torch.float).view(2, 4, 6)
    patches = tokenize(images, "patches", 2)  # (2, 6, 4)
    assert patches.shape == (2, 6, 4)
    back = patches.view(2, 2, 3, 2, 2).permute(0, 1, 3, 2, 4).reshape(2, 4, 6)
    assert torch.equal(back, images)
    assert torch.equal(tokenize(images, "rows", 0), images)
    with pytest.raises(ValueError, match="divide the 4x6 image"):
        tokenize(images, "patches", 4)
    with pytest.raises(ValueError, match="expected one of: rows, patches"):
        tokenize(images, "columns", 0)


def test_digits_task_serves_rows_and_every_split(digits: DigitsTask) -> None:
    s = image_splits("digits")
    assert (digits.seq_len, digits.input_dim, digits.vocab_size) == (8, 8, 10)
    assert task_kind(digits) == "classify" and TASKS.get("digits") is DigitsTask
    x, y = digits.batch("train", 5, 8, torch.Generator().manual_seed(0))
    assert x.shape == (5, 8, 8) and y.shape == (5, 1) and y.dtype == torch.long
    for split, labels in (("val", s.y_val), ("test", s.y_test)):
        batches = digits.eval_batches(1, 4, 8, split=split)
        assert torch.equal(torch.cat([b[1] for b in batches]).flatten(), labels)
    with pytest.raises(ValueError, match="expected train.seq_len = 8, got 64"):
        digits.batch("train", 2, 64, torch.Generator())
    with pytest.raises(ValueError, match="expected one of: train, val, test"):
        digits.eval_batches(1, 1, 8, split="dev")
    with pytest.raises(ValueError, match="expected one of: digits, mnist"):
        ImageTask("cifar")


def test_overrides_fit_the_run_config_to_the_images(digits: DigitsTask) -> None:
    cfg = fit_to_task(RunConfig.preset("small"), digits)
    assert (cfg.train.seq_len, cfg.network.input_dim, cfg.network.readout) == (8, 8, "last")
    mean = RunConfig.preset("small").merged({"network": {"readout": "mean"}})
    assert fit_to_task(mean, digits).network.readout == "mean"
    lang = type("Lang", (), {"vocab_size": 7})()
    assert task_overrides(lang) == {"network": {"vocab_size": 7}}


def test_score_is_the_argmax_count_over_the_whole_split(digits: DigitsTask) -> None:
    cfg = fit_to_task(RunConfig.preset("digits").merged(SHORT), digits)
    net = build_network(cfg, digits.vocab_size)
    trainer = Trainer(net, digits, cfg.train)
    batches = digits.eval_batches(1, 1, 8)
    loss, acc = trainer.score(batches)
    with torch.no_grad():
        x = torch.cat([b[0] for b in batches])
        y = torch.cat([b[1] for b in batches]).flatten()
        logits = net(x)[:, -1]
    assert acc == pytest.approx(float((logits.argmax(-1) == y).float().mean()))
    assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)), rel=1e-5)


def test_a_digits_run_logs_accuracy_where_plots_read_it(tmp_path) -> None:
    cfg = RunConfig.preset("digits").merged({**SHORT, "task": "digits"})
    summary = grow(cfg, tmp_path / "run", callbacks=[FlopCounter()])
    assert 0.0 <= summary["test_acc"] <= 1.0 and "val_bpc" not in summary
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    evals = [r for r in records if r["kind"] == "eval"]
    flops = [r for r in records if r["kind"] == "flops"]
    assert [r["step"] for r in evals] == [15, 30]
    assert all("val_acc" in r and "val_bpc" not in r for r in evals + flops)
    assert evals[-1]["best_val_acc"] == max(r["val_acc"] for r in evals)
    assert [r["kind"] for r in records].count("test") == 1
    assert all("bpc" not in r for r in records if r["kind"] == "train")
    written = (tmp_path / "run" / "config.toml").read_text()
    assert "seq_len = 8" in written and 'readout = "last"' in written


def test_cli_grows_digits_and_refuses_a_language_option(tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "d"
    result = runner.invoke(
        app, ["grow", "--task", "digits", "--steps", "20", "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "test_acc" in result.output
    assert json.loads((out / "summary.json").read_text())["task"]["task"] == "digits"
    bad = tmp_path / "bad"
    result = runner.invoke(
        app, ["grow", "--task", "digits", "--corpus", "pydoc", "--out", str(bad)]
    )
    assert result.exit_code == 2 and "belongs to task lang, not 'digits'" in result.output
    assert not bad.exists()


def test_mnist_rows_and_patches_cover_every_pixel() -> None:
    from morpho.sims.images import MnistTask

    rows, patches = MnistTask(), MnistTask("patches", 7)
    assert (rows.seq_len, rows.input_dim) == (28, 28)
    assert (patches.seq_len, patches.input_dim) == (16, 49)
    x_rows, x_patches = rows.splits["test"][0], patches.splits["test"][0]
    assert torch.equal(x_rows.flatten(1).sort(1).values, x_patches.flatten(1).sort(1).values)

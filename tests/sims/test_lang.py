"""The lang task: corpora, character vocabulary, held-out tail, bad files, ``morpho sample``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from morpho.cli import app
from morpho.config import RunConfig
from morpho.grow import grow
from morpho.sims.lang import CharVocab, LangTask, load_corpus

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40  # 1,800 characters
TINY = {
    "network": {"d_cell": 8, "level_sizes": [2, 2, 2], "n_heads": 2, "mlp_ratio": 1},
    "train": {
        "steps": 2,
        "batch_size": 2,
        "seq_len": 16,
        "eval_every": 2,
        "eval_batches": 1,
        "log_every": 1,
        "warmup": 1,
    },
}


@pytest.fixture(scope="module")
def pydoc() -> LangTask:
    return LangTask()


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "fox.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_val_is_the_held_out_tail_and_disjoint_from_train(pydoc: LangTask) -> None:
    ids = pydoc.encode(pydoc.text)
    train, val = pydoc.splits["train"], pydoc.splits["val"]
    assert len(train) + len(val) == len(ids)
    assert torch.equal(torch.cat([train, val]), ids)  # train is the head, val the tail
    assert len(val) == int(0.1 * len(ids))
    for x, y in pydoc.eval_batches(2, 4, 32):  # fixed windows come from the tail only
        assert torch.equal(x[:, 1:], y[:, :-1])
    again = pydoc.eval_batches(2, 4, 32)
    assert all(
        torch.equal(a[0], b[0]) for a, b in zip(pydoc.eval_batches(2, 4, 32), again, strict=True)
    )


def test_train_batches_stay_inside_the_train_split(text_file: Path) -> None:
    task = LangTask(data=str(text_file), val_fraction=0.5)
    n_train = len(task.splits["train"])
    gen = torch.Generator().manual_seed(0)
    x, y = task.batch("train", 64, 16, gen)
    assert x.shape == y.shape == (64, 16) and torch.equal(x[:, 1:], y[:, :-1])
    train_text = task.text[:n_train]
    assert all(task.decode(row) in train_text for row in torch.cat([x, y[:, -1:]], 1))


def test_encode_decode_round_trip(pydoc: LangTask) -> None:
    assert pydoc.decode(pydoc.encode(pydoc.text)) == pydoc.text
    assert pydoc.chars == "".join(sorted(set(pydoc.text))) and pydoc.vocab_size == len(pydoc.chars)
    vocab = CharVocab("zab")  # any order of characters
    assert vocab.encode("abz").tolist() == [1, 2, 0]
    assert vocab.encode("a☃b").tolist() == [1, 0, 2]  # unknown characters map to id 0


def test_data_file_is_the_corpus(text_file: Path) -> None:
    task = LangTask(data=str(text_file))
    assert task.text == TEXT and task.chars == "".join(sorted(set(TEXT)))
    assert task.describe()["corpus"] == f"file:{text_file}"


def test_stdlib_corpus_is_python_source_without_test_suites() -> None:
    text, source = load_corpus("stdlib")
    assert source == "stdlib" and 5e6 < len(text) < 3e7
    assert "def " in text and "class TestCase" in text  # unittest itself stays
    assert "class GrammarTests(unittest.TestCase)" not in text  # test/test_grammar.py, skipped


@pytest.mark.parametrize(
    "content, reason",
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b"PK\x03\x04\x00\x00binary", "is binary"),
        (b"caf\xe9", "is not UTF-8"),
    ],
)
def test_bad_data_files_say_what_was_expected(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{reason}.*expected a UTF-8 text file"):
        LangTask(data=str(path))


def test_unknown_corpus_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown corpus 'wiki'; expected one of: pydoc, stdlib"):
        LangTask(corpus="wiki")


def test_grow_cli_rejects_a_binary_data_file(tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"\x00\x01\x02")
    result = CliRunner().invoke(
        app, ["grow", "--data", str(tmp_path / "x.bin"), "--out", str(tmp_path / "run"), "--quiet"]
    )
    assert result.exit_code == 2 and "is binary; expected a UTF-8 text file" in result.output
    assert not (tmp_path / "run").exists()


def test_sample_prints_the_prompt_and_its_continuation(tmp_path: Path, text_file: Path) -> None:
    cfg = RunConfig().merged({**TINY, "task_options": {"data": str(text_file)}})
    grow(cfg, tmp_path / "run")
    args = ["sample", str(tmp_path / "run"), "--prompt", "the quick", "--length", "30"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    line = first.output.rstrip("\n")
    assert line.startswith("the quick") and len(line) == len("the quick") + 30
    assert set(line) <= set(TEXT)  # only characters of the run's vocabulary
    assert CliRunner().invoke(app, args).output == first.output  # seeded


def test_sample_of_a_missing_run_fails_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sample", str(tmp_path / "nope")])
    assert result.exit_code == 2 and result.output.startswith("error:")

"""Laws of the run config: bad input is a ``ValueError`` naming the key; TOML round-trips."""

from __future__ import annotations

import pytest
import tomllib

from morpho.config import PRESETS, RunConfig
from morpho.files import dump_toml, load_toml
from morpho.trainer import TrainConfig


@pytest.mark.parametrize(
    "override,names",
    [
        ({"train": {"stepz": 1}}, ("train", "stepz", "expected one of", "steps")),
        ({"network": {"d_cel": 8}}, ("network", "d_cel", "d_cell")),
        ({"bogus": 1}, ("bogus", "expected one of", "train")),
    ],
)
def test_unknown_key_names_the_key_and_the_choices(override, names) -> None:
    with pytest.raises(ValueError) as err:
        RunConfig().merged(override)
    assert "unknown config key" in str(err.value)
    for name in names:
        assert name in str(err.value)


@pytest.mark.parametrize(
    "override,key",
    [
        ({"train": {"lr": "fast"}}, "train.lr"),
        ({"train": {"steps": 1.5}}, "train.steps"),
        ({"train": {"steps": True}}, "train.steps"),  # a bool is not an int here
        ({"train": {"device": 0}}, "train.device"),
        ({"network": {"level_sizes": "abc"}}, "network.level_sizes"),
        ({"network": {"level_sizes": [2, "x", 2]}}, "network.level_sizes"),
        ({"network": 3}, "network"),
        ({"task_options": [1]}, "task_options"),
    ],
)
def test_wrong_type_names_the_key(override, key: str) -> None:
    # (a section given as a scalar reads "network.: expected a table"; the key is still named)
    with pytest.raises(ValueError, match=rf"^{key}\.?: expected"):
        RunConfig().merged(override)


@pytest.mark.parametrize(
    "key,value",
    [("steps", -1), ("batch_size", 0), ("lr", 0.0), ("min_lr_ratio", 1.5), ("grad_clip", -1.0)],
)
def test_out_of_range_names_the_key(key: str, value) -> None:
    with pytest.raises(ValueError, match=f"train.{key} must be .*; got {value!r}"):
        RunConfig().merged({"train": {key: value}})
    with pytest.raises(ValueError, match=f"train.{key}"):
        TrainConfig(**{key: value})


def test_network_constraints_surface_as_value_errors() -> None:
    with pytest.raises(ValueError, match="d_cell"):
        RunConfig().merged({"network": {"d_cell": 7}})


def test_int_widens_to_float_and_lists_become_tuples() -> None:
    cfg = RunConfig().merged({"train": {"lr": 1}, "network": {"level_sizes": [1, 2, 1]}})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.network.level_sizes == (1, 2, 1)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_toml(name: str) -> None:
    cfg = RunConfig.preset(name)
    back = RunConfig().merged(tomllib.loads(dump_toml(cfg.to_dict())))
    assert back == cfg


def test_later_layers_override_earlier_ones() -> None:
    cfg = RunConfig.preset("small").merged({"train": {"steps": 7}})
    assert cfg.train.steps == 7
    assert cfg.train.batch_size == PRESETS["small"]["train"]["batch_size"]
    assert cfg.network.d_cell == PRESETS["small"]["network"]["d_cell"]


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ValueError, match="unknown preset 'huge'; expected one of: small, base"):
        RunConfig.preset("huge")


def test_load_toml_errors_name_the_file(tmp_path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ValueError, match="nope.toml.*does not exist"):
        load_toml(missing)
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps = 3\n")
    with pytest.raises(ValueError, match="bad.toml.*not valid TOML"):
        load_toml(bad)
    good = tmp_path / "good.toml"
    good.write_text("[train]\nsteps = 3\nstepz = 4\n")
    with pytest.raises(ValueError, match="stepz"):
        RunConfig().merged(load_toml(good))

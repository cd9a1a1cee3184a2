"""The growth config is a typed field of the run config; every rule's parameters are typed
and range-checked by the one config coercer, before any run directory exists."""

from __future__ import annotations

import pytest

from morpho.config import RunConfig
from morpho.grow import grow
from morpho.growth.config import GrowthConfig


def test_growth_is_a_typed_field_with_every_rule_resolved() -> None:
    cfg = RunConfig().merged({"growth": {"interval": 7, "mitosis": {"patience": 2}}})
    assert isinstance(cfg.growth, GrowthConfig) and cfg.growth.interval == 7
    assert cfg.growth.params["mitosis"]["patience"] == 2
    table = cfg.to_dict()["growth"]
    assert table["mitosis"]["patience"] == 2 and "epsilon" in table["apoptosis"]
    assert RunConfig().merged(cfg.to_dict()) == cfg  # the resolved table round-trips


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"mitosis": {"patience": "x"}}, "growth.mitosis.patience: expected int, got 'x'"),
        ({"mitosis": {"quantile": 7.5}}, r"growth.mitosis.quantile must be in \[0, 1\]; got 7.5"),
        ({"apoptosis": {"epsilon": 2.0}}, r"growth.apoptosis.epsilon must be in \[0, 1\]"),
        ({"prune": {"patience": 0}}, "growth.prune.patience must be >= 1; got 0"),
        ({"dendrite": {"wormholes": "yes"}}, "growth.dendrite.wormholes: expected bool"),
        ({"energy_terms": {"wiring": "a"}}, "growth.energy_terms.wiring: expected float"),
        ({"mitosis": {"patiense": 2}}, "unknown config key growth.mitosis.patiense"),
    ],
)
def test_bad_rule_parameters_fail_at_config_time(table: dict, message: str, tmp_path) -> None:
    with pytest.raises(ValueError, match=message) as err:
        grow(RunConfig().merged({"growth": table}), tmp_path / "run")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()

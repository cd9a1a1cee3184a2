"""The growth scheduler and its interface, re-exported from :mod:`morpho.growth`.

from morpho.scheduler import Event, GrowthView, Rule, RULES, GrowthConfig, Scheduler
"""

from morpho.growth.config import DEFAULT_RULES, ENTROPY_TERMS, GrowthConfig
from morpho.growth.dispatch import EDIT_BUILDERS, edit_for, params_after
from morpho.growth.probes import edge_gradients, knockout_dloss
from morpho.growth.rule import RULES, Event, GrowthView, Rule, build_rule, rule_law
from morpho.growth.scheduler import Scheduler
from morpho.growth.stats import CELL_STATS

__all__ = [
    "CELL_STATS",
    "DEFAULT_RULES",
    "EDIT_BUILDERS",
    "ENTROPY_TERMS",
    "RULES",
    "Event",
    "GrowthConfig",
    "GrowthView",
    "Rule",
    "Scheduler",
    "build_rule",
    "edge_gradients",
    "edit_for",
    "knockout_dloss",
    "params_after",
    "rule_law",
]

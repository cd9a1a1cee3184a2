"""Growth (DESIGN §4): the rule interface, its config, per-cell statistics, the conflict
resolver, the probes, and the scheduler that glues them into a trainer callback.

    from morpho.growth.rule import Event, GrowthView, Rule, RULES   # what a rule needs
    from morpho.growth.config import GrowthConfig                    # the [growth] table
    from morpho.growth.scheduler import Scheduler                    # the trainer callback

Modules, bottom up: :mod:`~morpho.growth.rule` (imports only the tissue's type and the
registry), :mod:`~morpho.growth.config`, :mod:`~morpho.growth.stats` (EMAs and history),
:mod:`~morpho.growth.resolve` (proposals, budgets, cooldowns → accepted events),
:mod:`~morpho.growth.probes` (edge gradients, knockout), :mod:`~morpho.growth.knife`
(the KNIFE entropy term), :mod:`~morpho.growth.scheduler`.
"""

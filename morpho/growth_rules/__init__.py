"""The built-in growth rules (DESIGN §4), one file each; each only proposes events.

Installed as ``morpho.growth_rules`` and found by the engine through the
``morpho.growth_rules`` entry-point group (``morpho.scheduler.RULES``) — the engine never
imports this package. A third-party rule is a :class:`morpho.scheduler.Rule` subclass
registered under the same group; ``morpho rules`` lists them all with their laws.
"""

"""The built-in growth rules (DESIGN §4), one file each; each only proposes events.

Installed as ``morpho.growth_rules`` and found by the engine through the
``morpho.growth_rules`` entry-point group (``morpho.growth.rule.RULES``) — the engine never
imports this package. A third-party rule is a :class:`morpho.growth.rule.Rule` subclass
registered under the same group; ``morpho rules`` lists them all with their laws.
"""

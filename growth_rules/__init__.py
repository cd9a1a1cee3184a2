"""morpho.growth_rules"""

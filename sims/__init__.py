"""morpho.sims"""

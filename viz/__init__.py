"""morpho.viz"""

"""Parity between the engines: weight transfer, numerical checks, side-by-side reports.

With `benchmarks`, the only packages allowed to load both frameworks in one process; import torch first.
"""

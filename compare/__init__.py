"""Parity between the backends: weight transfer, numerical checks, side-by-side reports.

The only package allowed to load both frameworks in one process; import torch first.
"""

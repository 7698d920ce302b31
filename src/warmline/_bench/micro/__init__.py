"""Micro-benchmarks printed by `warmline bench`: object pools, request building, parsing."""

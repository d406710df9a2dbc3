"""Benchmarks (issue 5): never part of the test run; ``python -m bench`` runs them."""

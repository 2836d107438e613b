"""Benchmarks of ttc-agent, each runnable as ``python -m benchmarks.NAME`` from the repository root
(see benchmarks/README.md for which script makes which figure)."""

"""Benchmarks (pytest-benchmark): same-run comparisons against named peers."""

"""Benchmarks and device tooling (kept out of the library core)."""

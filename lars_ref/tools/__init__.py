"""Tools around the library, not part of it: benchmarks and device tooling."""

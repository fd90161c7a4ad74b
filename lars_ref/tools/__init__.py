"""Tools around the library, not part of it: benchmarks, device probes, GPU check."""

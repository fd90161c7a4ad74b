"""Tools around the library, not part of it: benchmarks, device probes, the GPU check."""

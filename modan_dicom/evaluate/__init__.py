"""Evaluation of encoders: features, k-nearest-neighbour probes, downstream benchmarks and reports."""

"""Benchmarks: each compares conveyor with a baseline measured in the same run."""

"""Speed and scale benchmarks: `make bench` (python -m benchmarks). Not part of `make test`.

Every figure is a ratio of two things timed side by side in one process run (alternating, repeated, median), with
the absolute numbers beside it: the machines here are shared and noisy, so an absolute time alone says little.
"""

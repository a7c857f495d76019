"""`make bench`: how fast a backup runs against what the codec alone could do.

`python -m benchmarks.run` measures the single-thread codec pipeline limit on a
fixed real dataset, then a real ten-process loopback mesh backing the same
bytes up and restoring them, and writes the figures to `benchmarks/results/`.
"""

"""Benchmarks that print tables (from the repository root: ``python -m benchmarks.pipeline``).

A regular package: opacus installs a top-level ``benchmarks`` package of its own, which would
otherwise shadow this folder."""

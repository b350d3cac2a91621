"""Benchmarks of baton on BENCH.md's fixed workload; figures go in bench/README.md, never in tests."""

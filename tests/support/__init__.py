"""Helpers tests (and benchmarks) use to drive the running system through the gateway."""

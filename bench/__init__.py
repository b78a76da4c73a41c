"""Benchmarks of the portal: ``python -m bench <name> [--quick]``.

Each benchmark is a module ``bench/<name>.py`` with a ``main(argv) -> int``. It works on a
throw-away database (and RabbitMQ vhost) that it drops at the end, prints a readable table,
and ends with one line ``RESULT <name> key=value ...`` giving each figure, the baseline
measured in the same run, and their ratio, so runs on different machines stay comparable.
``--quick`` finishes within a minute (a smoke run for CI and ``make bench-quick``).
"""

"""The chaos suite runs on infrastructure of its own (tests/chaos/infra.py): it needs none of
the shared fixtures, only the ``initdb`` and ``rabbitmq-server`` binaries."""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line("markers", "chaos: fault injection under load on a private PostgreSQL and RabbitMQ "
                                       "(tests/chaos; the full form is `python -m tests.chaos`)")

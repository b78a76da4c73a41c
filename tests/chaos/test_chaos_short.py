"""The short chaos run of ``make test``: one stream of filings from several clients, and in it
a PostgreSQL restart (``pg_ctl restart -m fast``), a SIGKILL of the router (started again) and
a RabbitMQ restart, on a private cluster and broker reached through fault proxies. Then no
dossier may be lost or doubled, the code sequences have no gap, every dossier reached its
agency's queue exactly once by delivery id, every notice was sent once and every projection
equals its rebuild (tests/chaos/invariants.py). Each fault alone, and the others (proxy cuts
and slow-downs, kill -9 of every service and of PostgreSQL): ``python -m tests.chaos``.

The stream comes in three bursts (half the filings, a quarter, a quarter), each at full
speed from the clients, and each fault hits its burst once 40 % of it has started: a fault
at full load is what loses messages (a PostgreSQL restart under 200 filings from 10 clients
lost 5 to 14 router deliveries before consumers requeued failed messages).

Knobs (environment): CHAOS_FILINGS (default 120), CHAOS_CLIENTS (10).
"""

from __future__ import annotations

import os

import pytest

from tests.chaos import scenarios
from tests.chaos.infra import Infrastructure, missing_binaries

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

FILINGS = int(os.environ.get("CHAOS_FILINGS", "120"))
CLIENTS = int(os.environ.get("CHAOS_CLIENTS", "10"))
FAULTS = ["postgresql-restart", "kill-router", "rabbitmq-restart"]


@pytest.fixture(scope="module")
def infra():
    reason = missing_binaries()
    if reason:
        pytest.skip(reason)
    infrastructure = Infrastructure().start()
    yield infrastructure
    infrastructure.close()


def test_no_dossier_is_lost_or_doubled_through_a_database_restart_a_router_kill_and_a_broker_restart(
        infra, tmp_path):
    outcome = scenarios.run(infra, FAULTS, label="postgresql restart + kill -9 router + rabbitmq restart",
                            filings=FILINGS, clients=CLIENTS, weights=[2, 1, 1], at=0.4, log_dir=tmp_path / "logs",
                            settle_timeout=90.0, quiet_s=20.0)
    text = "\n".join([outcome.text(), "", scenarios.HEADER, scenarios.table_row(outcome),
                      f"(service logs: {tmp_path / 'logs'})"])
    (tmp_path / "report.txt").write_text(text)
    print(text)
    assert outcome.report is not None, text
    assert not [f for f in outcome.faults if f.error], text
    assert len(outcome.faults) == len(FAULTS), text
    assert outcome.ok, text

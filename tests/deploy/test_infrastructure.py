"""What `make up` and `make test` do about PostgreSQL and RabbitMQ, given what the machine has:
which commands would run (nothing is installed or started here: the commands are recorded)."""

from __future__ import annotations

import pytest

from deploy import infrastructure
from deploy.infrastructure import (
    Machine,
    install_commands,
    install_refusal,
    missing_servers,
    needs_trust_lines,
    start_commands,
    trust_commands,
)

APT = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
BARE = Machine(postgres_versions=(), pg_ctlcluster=False, rabbitmq_server=False, apt_get=True, root=True,
               sudo=False, auto_install=True)
INSTALLED = Machine(postgres_versions=("9.6", "15"), pg_ctlcluster=True, rabbitmq_server=True, apt_get=True,
                    root=True, sudo=False, auto_install=True)
DEBIAN_HBA = """\
# Database administrative login by Unix domain socket
local   all             postgres                                peer
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
"""


def _machine(base: Machine, **changes) -> Machine:
    return Machine(**{**base.__dict__, **changes})


@pytest.mark.parametrize(("machine", "pg_down", "mq_down", "missing"), [
    (BARE, True, True, ["PostgreSQL", "RabbitMQ"]),
    (BARE, False, True, ["RabbitMQ"]),  # PostgreSQL answers (elsewhere, or not local): leave it
    (BARE, False, False, []),
    (INSTALLED, True, True, []),  # installed but stopped: start, do not install
    (_machine(INSTALLED, rabbitmq_server=False), True, True, ["RabbitMQ"]),
    (_machine(INSTALLED, pg_ctlcluster=False), True, False, ["PostgreSQL"]),  # a cluster dir, no tools
    (_machine(INSTALLED, postgres_versions=()), True, False, ["PostgreSQL"]),
])
def test_only_servers_that_are_down_and_not_installed_are_missing(machine, pg_down, mq_down, missing):
    assert missing_servers(machine, pg_down, mq_down) == missing


def test_root_installs_with_apt_get_directly():
    assert install_refusal(BARE) is None
    assert install_commands(BARE, ["PostgreSQL", "RabbitMQ"]) == [
        [*APT, "update", "-q"],
        [*APT, "install", "-y", "-q", "--no-install-recommends", "postgresql", "rabbitmq-server"],
    ]
    assert install_commands(BARE, ["RabbitMQ"])[-1][-1] == "rabbitmq-server"
    assert install_commands(BARE, []) == []


def test_a_user_with_sudo_installs_through_sudo():
    machine = _machine(BARE, root=False, sudo=True)
    assert install_refusal(machine) is None
    assert install_commands(machine, ["PostgreSQL"]) == [
        ["sudo", *APT, "update", "-q"],
        ["sudo", *APT, "install", "-y", "-q", "--no-install-recommends", "postgresql"],
    ]


@pytest.mark.parametrize(("changes", "reason"), [
    ({"root": False, "sudo": False}, "installing needs root rights or sudo"),
    ({"apt_get": False}, "this machine has no apt-get"),
    ({"auto_install": False}, "PORTAL_AUTO_INSTALL=no"),
    ({"auto_install": False, "apt_get": False}, "PORTAL_AUTO_INSTALL=no"),
])
def test_nothing_is_installed_without_apt_get_rights_or_consent(changes, reason):
    machine = _machine(BARE, **changes)
    assert install_refusal(machine) == reason
    assert install_commands(machine, ["PostgreSQL", "RabbitMQ"]) == []


def test_stopped_installs_are_started_as_before_newest_cluster_first():
    assert start_commands(INSTALLED, True, True) == [
        ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "start"],
        ["rabbitmq-server", "-detached"],
    ]
    assert start_commands(INSTALLED, False, True) == [["rabbitmq-server", "-detached"]]
    assert start_commands(INSTALLED, False, False) == []
    assert start_commands(BARE, True, True) == []  # nothing installed: nothing to start
    assert start_commands(_machine(INSTALLED, root=False, sudo=True), True, False) == [
        ["sudo", "pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "start"]]
    assert start_commands(_machine(INSTALLED, root=False), False, True) == [["rabbitmq-server", "-detached"]]


def test_a_fresh_clusters_password_rule_gets_local_trust_on_top():
    assert needs_trust_lines(DEBIAN_HBA)
    assert not needs_trust_lines("local all all trust\nhost all all 127.0.0.1/32 trust\n"
                                 "host    all   all   ::1/128   trust\n")
    assert needs_trust_lines("# host all all 127.0.0.1/32 trust\n# host all all ::1/128 trust\n")
    assert trust_commands(INSTALLED, "15") == [
        ["sed", "-i", "-e", "1i host all all 127.0.0.1/32 trust", "-e", "1i host all all ::1/128 trust",
         "/etc/postgresql/15/main/pg_hba.conf"],
        ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "reload"],
    ]


def test_the_opt_out_variable_is_read(monkeypatch):
    for value, expected in (("no", False), ("NO", False), ("0", False), ("yes", True)):
        monkeypatch.setenv("PORTAL_AUTO_INSTALL", value)
        assert infrastructure.inspect_machine().auto_install is expected
    monkeypatch.delenv("PORTAL_AUTO_INSTALL")
    assert infrastructure.inspect_machine().auto_install is True


class FakeMachine:
    """Ports, installs and commands of a pretend machine: a start command opens its port."""

    def __init__(self, monkeypatch, tmp_path, machine: Machine, up: set[int], installs: Machine | None = None):
        self.machine, self.up, self.ran = machine, up, []
        self.installs = installs
        (tmp_path / "15" / "main").mkdir(parents=True)
        (tmp_path / "15" / "main" / "pg_hba.conf").write_text(DEBIAN_HBA)
        monkeypatch.setattr(infrastructure, "PG_ETC", tmp_path)
        monkeypatch.setattr(infrastructure, "inspect_machine", lambda: self.machine)
        monkeypatch.setattr(infrastructure, "port_open", lambda host, port, timeout=1.0: port in self.up)
        monkeypatch.setattr(infrastructure, "_run", self.run)

    def run(self, command: list[str]) -> bool:
        self.ran.append(command)
        if "install" in command and self.installs is not None:
            self.machine = self.installs
        if command[-1] == "start":
            self.up.add(5432)
        if command[-1] == "-detached":
            self.up.add(5672)
        return True


DSN, AMQP = "postgresql://postgres@127.0.0.1:5432/portal", "amqp://guest:guest@127.0.0.1:5672/"


def test_answering_servers_are_left_alone(monkeypatch, tmp_path):
    fake = FakeMachine(monkeypatch, tmp_path, BARE, {5432, 5672})
    infrastructure.ensure_infrastructure(DSN, AMQP, wait_s=1)
    assert fake.ran == []


def test_a_bare_debian_machine_is_given_both_servers_announced_then_started(monkeypatch, tmp_path, capsys):
    installed = _machine(INSTALLED, postgres_versions=("15",))
    fake = FakeMachine(monkeypatch, tmp_path, BARE, set(), installs=installed)
    infrastructure.ensure_infrastructure(DSN, AMQP, wait_s=1)
    hba = str(tmp_path / "15" / "main" / "pg_hba.conf")
    assert fake.ran == [
        [*APT, "update", "-q"],
        [*APT, "install", "-y", "-q", "--no-install-recommends", "postgresql", "rabbitmq-server"],
        ["sed", "-i", "-e", "1i host all all 127.0.0.1/32 trust", "-e", "1i host all all ::1/128 trust", hba],
        ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "reload"],
        ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "start"],
        ["rabbitmq-server", "-detached"],
    ]
    out = capsys.readouterr().out
    assert out.index("installing postgresql rabbitmq-server with apt-get (PORTAL_AUTO_INSTALL=no turns this off)") \
        < out.index("$ env DEBIAN_FRONTEND=noninteractive apt-get update")


def test_stopped_installs_are_only_started(monkeypatch, tmp_path):
    fake = FakeMachine(monkeypatch, tmp_path, INSTALLED, set())
    infrastructure.ensure_infrastructure(DSN, AMQP, wait_s=1)
    assert fake.ran == [["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "start"],
                        ["rabbitmq-server", "-detached"]]


def test_opted_out_or_without_rights_it_says_what_to_install(monkeypatch, tmp_path):
    for machine, reason in ((_machine(BARE, auto_install=False), "PORTAL_AUTO_INSTALL=no"),
                            (_machine(BARE, root=False, sudo=False), "installing needs root rights or sudo")):
        fake = FakeMachine(monkeypatch, tmp_path / reason.split()[0], machine, {5432})
        with pytest.raises(SystemExit) as stopped:
            infrastructure.ensure_infrastructure(DSN, AMQP, wait_s=0.1)
        assert fake.ran == []
        message = str(stopped.value)
        assert "RabbitMQ at 127.0.0.1:5672 not answering" in message and "PostgreSQL" not in message
        assert "apt-get install postgresql rabbitmq-server" in message and reason in message


def test_remote_servers_are_never_started_or_installed(monkeypatch, tmp_path):
    fake = FakeMachine(monkeypatch, tmp_path, BARE, set())
    with pytest.raises(SystemExit):
        infrastructure.ensure_infrastructure("postgresql://postgres@db.example:5432/portal",
                                             "amqp://guest:guest@mq.example:5672/", wait_s=0.1)
    assert fake.ran == []

"""How the launcher reads the number of processes per service and names them."""

from __future__ import annotations

import pytest

from deploy.launcher import (
    SERVICE_CLASSES,
    LocalSystem,
    instance_key,
    parse_instance_key,
    process_count,
    process_nice,
)


def test_per_service_count_wins_over_the_general_one_which_wins_over_one():
    env = {"PROCESSES": "3", "DOSSIER_PROCESSES": "2"}
    assert process_count("dossier", env) == 2
    assert process_count("catalog", env) == 3
    assert process_count("router", {}) == 1


@pytest.mark.parametrize("raw", ["0", "-1", "two", "65", "1.5"])
def test_a_count_that_is_not_a_small_positive_number_is_refused(raw):
    with pytest.raises(ValueError, match="DOSSIER_PROCESSES"):
        process_count("dossier", {"DOSSIER_PROCESSES": raw})


def test_every_launched_service_gets_its_processes_each_with_an_instance_id():
    system = LocalSystem("postgresql://x/y", "amqp://x/", 0,
                         extra_env={"PROCESSES": "2", "GATEWAY_PROCESSES": "3", "ROUTER_PROCESSES": "1",
                                    "METRICS_PORT": "", "DOSSIER_METRICS_PORT": "9103"})
    assert system.counts == {**{name: 2 for name in SERVICE_CLASSES}, "gateway": 3, "router": 1}
    keys = system.instance_keys()
    assert keys.count("dossier") == 1 and "dossier-2" in keys and "dossier-3" not in keys
    assert [k for k in keys if k.startswith("gateway")] == ["gateway", "gateway-2", "gateway-3"]
    assert "router-2" not in keys
    first, second = system.env("dossier", 1), system.env("dossier", 2)
    assert (first["INSTANCE_ID"], second["INSTANCE_ID"]) == ("dossier-1", "dossier-2")
    # each process of a service with a fixed metrics port gets its own, 100 apart
    assert (first["DOSSIER_METRICS_PORT"], second["DOSSIER_METRICS_PORT"]) == ("9103", "9203")
    # the gateway's processes share one HTTP port (SO_REUSEPORT)
    assert {system.env("gateway", n)["GATEWAY_PORT"] for n in (1, 2, 3)} == {"0"}


def test_instance_keys_round_trip_and_unknown_ones_are_refused():
    for name in SERVICE_CLASSES:
        for number in (1, 2, 7):
            assert parse_instance_key(instance_key(name, number)) == (name, number)
    for bad in ("nobody", "dossier-1", "dossier-x", "dossier-", "-2"):
        with pytest.raises(KeyError):
            parse_instance_key(bad)


def test_the_log_consumers_run_at_a_lower_cpu_priority_unless_told_otherwise():
    assert [process_nice(name, {}) for name in ("router", "identity")] == [10, 10]
    assert all(process_nice(name, {}) == 0 for name in SERVICE_CLASSES if name not in ("router", "identity"))
    assert process_nice("router", {"ROUTER_NICE": "0"}) == 0
    assert process_nice("dossier", {"DOSSIER_NICE": " 5 "}) == 5
    assert process_nice("identity", {"IDENTITY_NICE": ""}) == 10  # empty: the default


@pytest.mark.parametrize("raw", ["-1", "20", "low", "2.5"])
def test_a_priority_outside_nice_s_range_is_refused_before_anything_starts(raw):
    with pytest.raises(ValueError, match="ROUTER_NICE"):
        process_nice("router", {"ROUTER_NICE": raw})
    with pytest.raises(ValueError, match="ROUTER_NICE"):
        LocalSystem("postgresql://x/y", "amqp://x/", 0, extra_env={"ROUTER_NICE": raw})


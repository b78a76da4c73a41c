"""schemathesis against the running gateway: every operation of /openapi.json, with generated
valid and invalid input, must answer without a server error, with a documented status and
content type, and a body that matches its documented schema.

Bounded to run in a few minutes on two cores: ``SCHEMATHESIS_EXAMPLES`` examples per operation
(default 12), no shrinking, no example database. Operators and editors are included: when the
local stand-ins issue staff tokens, the run repeats signed in as each role.
"""

from __future__ import annotations

import os

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


def _tokens(gateway_url: str) -> dict[str, str]:
    """Bearer tokens per role: a citizen registered the real way, staff from the local stand-in."""
    out = {}
    try:
        from tests.support.accounts import register_citizen

        out["citizen"] = register_citizen(gateway_url)["access_token"]
    except Exception:  # the helpers or the stand-ins are not there: run the other roles
        pass
    for role, extra in (("officer", {"agency_code": "G01"}), ("operator", {}), ("editor", {})):
        try:
            resp = requests.post(f"{gateway_url}/api/v1/dev/tokens", json={"role": role, **extra}, timeout=10)
        except requests.RequestException:
            continue
        if resp.status_code in (200, 201) and "access_token" in resp.json():
            out[role] = resp.json()["access_token"]
    return out


def _exercise(operation, gateway_url: str, session: requests.Session, headers: dict[str, str]):
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def exercise(case):
        case.call_and_validate(base_url=gateway_url, session=session, headers=headers, checks=CHECKS,
                               timeout=30)

    return exercise


def _run(schema, gateway_url: str, headers: dict[str, str]) -> list[str]:
    session = requests.Session()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            _exercise(operation, gateway_url, session, headers)()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # collect every operation's failure (groups too), then report them all
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    return failures


def test_every_operation_survives_generated_input(gateway_url):
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    assert len(list(schema.get_all_operations())) >= 6
    # Generated sign-ins fail by the hundred: they come "from" addresses of their own (the suite's
    # gateway trusts 127.0.0.1 as a proxy), so identity's per-address lockout never hits the
    # other tests' 127.0.0.1.
    failures = _run(schema, gateway_url, {"X-Forwarded-For": "198.51.100.1"})
    for n, (role, token) in enumerate(_tokens(gateway_url).items(), start=2):
        headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": f"198.51.100.{n}"}
        failures += [f"[{role}] {f}" for f in _run(schema, gateway_url, headers)]
    assert not failures, "\n\n".join(failures)

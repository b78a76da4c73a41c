"""Every state x command against real PostgreSQL: allowed ones append and update the
projections; refused ones raise a typed Conflict and write nothing at all."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from portal_common.errors import Conflict
from portal_common.eventstore.events import EventContext
from services.dossier import queries
from services.dossier.domain import lifecycle
from services.dossier.domain.access import Caller
from services.dossier.domain.codes import stream_id
from tests.dossier.conftest import agency_ctx, applicant_ctx, submit
from tests.dossier.test_domain import RESULT_STATUS, expected_allowed

PATHS = {
    "submitted": [], "received": ["receive"], "refused": ["refuse"],
    "processing": ["receive", "start_processing"],
    "supplement_requested": ["receive", "request_supplement"],
    "supplemented": ["receive", "request_supplement", "supplement"],
    "forwarded": ["receive", "forward"], "result_ready": ["receive", "result"],
    "returned": ["receive", "result", "return_result"], "rejected": ["receive", "reject"],
    "withdrawn": ["withdraw"],
    "processing+paused": ["receive", "start_processing", "pause"],
    "processing+overdue": ["receive", "start_processing", "mark_overdue"],
}


def args_for(command: str, now: dt.datetime) -> dict:
    return {
        "refuse": {"reason": "incomplete"}, "reject": {"reason": "not eligible"},
        "request_supplement": {"missing": ["photo"], "reason": "photo missing"},
        "supplement": {"note": "attached at the counter"},
        "forward": {"to_agency": {"code": "H29.02", "name": "B"}, "reason": "inter-agency"},
        "pause": {"reason": "waiting for verification"},
        "extend": {"new_date": now.date() + dt.timedelta(days=40), "reason": "we apologise"},
        "result": {"note": "granted"},
        "request_payment": {"amount": 50000, "reason": "Phí thẩm định", "request_id": str(uuid.uuid4())},
    }.get(command, {})


def run(repo, code: str, command: str, now: dt.datetime):
    state = repo.load(code)
    if command in lifecycle.APPLICANT_COMMANDS:
        caller, ctx = applicant_ctx(state.owner["account_id"])
    elif command == "mark_overdue":
        caller, ctx = Caller("system"), EventContext()
    else:
        caller, ctx = agency_ctx(state.agency_code)
    return repo.execute(code, command, args_for(command, now), caller, ctx, now=now)


def everything(repo, code: str) -> tuple:
    with repo.repository.db.transaction(dict_rows=False) as cur:
        rows = tuple(tuple(queries.snapshot(cur, n)) for n in queries.PROJECTIONS)
    return repo.log.stream_version(stream_id(code)), rows


@pytest.mark.parametrize("command", lifecycle.COMMANDS)
@pytest.mark.parametrize("variant", list(PATHS))
def test_command_in_state(shared_repo, variant, command):
    repo = shared_repo
    now = dt.datetime.now(dt.UTC)
    state, _ = submit(repo)
    code = state.code
    for step in PATHS[variant]:
        if step == "mark_overdue":  # jump past the appointment date
            now = dt.datetime.combine(repo.load(code).appointment_date + dt.timedelta(days=3), dt.time(3), dt.UTC)
        run(repo, code, step, now)
    status = variant.split("+")[0]
    paused, overdue = variant.endswith("paused"), variant.endswith("overdue")
    assert repo.load(code).status == status
    allowed = expected_allowed(status, command, paused, overdue)
    if command == "mark_overdue" and not overdue:
        allowed = False  # the appointment date is still ahead: the date guard refuses it
    before = everything(repo, code)
    if allowed:
        after = run(repo, code, command, now)
        assert after.status == RESULT_STATUS.get(command, status)
        version, _ = everything(repo, code)
        assert version == before[0] + 1
        assert repo.lookup(code)["status"] == after.status
    else:
        with pytest.raises(Conflict) as refused:
            run(repo, code, command, now)
        # these dossiers declared no fee exemption: an open one has nothing to dispute
        assert refused.value.code in ("transition_not_allowed", "not_overdue", "no_exemption_to_dispute")
        assert refused.value.details["state"] == status and refused.value.details["command"] == command
        assert everything(repo, code) == before

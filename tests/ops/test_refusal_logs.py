"""A caller's refusal leaves no error and no traceback in a service's log; faults still do."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import re
from pathlib import Path

import pytest
import yaml

from portal_common.errors import Conflict, DatabaseUnavailable, NotFound

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted([*ROOT.glob("services/*/config.yml"), ROOT / "gateway" / "config.yml"])


def _logging_config(path: Path) -> dict:
    """The LOGGING section as nameko reads it (``${NAME:default}`` taken at its default)."""
    text = re.sub(r"\$\{[A-Z_]+:([^}]*)\}", r"\1", path.read_text())
    return yaml.safe_load(text)["LOGGING"]


def _records_through(path: Path, raising: list[Exception]) -> list[dict]:
    config = _logging_config(path)
    config["disable_existing_loggers"] = False
    stream = io.StringIO()
    logging.config.dictConfig(config)
    handler = logging.getLogger().handlers[0]
    handler.setStream(stream)
    try:
        worker = logging.getLogger("nameko.containers")
        for exc in raising:
            try:
                raise exc
            except Exception as caught:
                worker.exception("error handling worker <WorkerContext [dossier.lookup]>: %s", caught)
        logging.getLogger("portal_common.metrics").info("rpc dossier.lookup refused")
    finally:
        logging.getLogger().handlers.clear()
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.parent.name)
def test_refusals_are_dropped_and_faults_kept_in_every_service(path):
    lines = _records_through(path, [NotFound("not_found", "No dossier has this code."),
                                    Conflict("idempotency_key_reused", "Used for another filing."),
                                    DatabaseUnavailable("database_unavailable", "The database did not answer."),
                                    ValueError("a bug")])
    errors = [line for line in lines if line["level"] == "error"]
    assert [e["message"].rsplit(": ", 1)[-1] for e in errors] == ["The database did not answer.", "a bug"]
    assert all("Traceback" in e["exception"] for e in errors)
    assert not any("not_found" in json.dumps(line) or "idempotency_key_reused" in json.dumps(line)
                   for line in lines)
    assert lines[-1]["message"] == "rpc dossier.lookup refused"  # the refusal's own line stays

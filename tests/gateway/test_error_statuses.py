"""The gateway's one table from service error types to HTTP statuses."""

from __future__ import annotations

import pytest
from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu.exceptions import OperationalError as KombuOperationalError

from gateway.http.problems import HTTP_STATUS, http_status
from gateway.http.route import ApiRoute
from portal_common import errors


@pytest.mark.parametrize(("error", "status"), [
    (errors.ServiceError("bad_request"), 400),
    (errors.InvalidInput("validation_failed"), 422),
    (errors.NotFound("dossier_not_found"), 404),
    (errors.Conflict("version_conflict"), 409),
    (errors.Unauthorized("invalid_token"), 401),
    (errors.Forbidden("forbidden"), 403),
    (errors.TooManyRequests("rate_limited"), 429),
    (errors.Unavailable("service_unavailable"), 503),
    (errors.DatabaseUnavailable(), 503),  # a subclass takes its nearest listed ancestor's
    (ValueError("not a service error"), 500),
])
def test_each_error_type_has_one_status(error, status):
    assert http_status(error) == status


def test_errors_carry_no_status_of_their_own():
    for cls in HTTP_STATUS:
        assert not hasattr(cls("code"), "status"), cls


@pytest.mark.parametrize("error", [
    KombuOperationalError("[Errno 111] Connection refused"),
    AmqpConnectionError("connection closed"),
    ConnectionResetError(104, "reset by peer"),
], ids=["kombu", "amqp", "socket"])
def test_a_broker_that_is_away_answers_503_with_retry_after(error):
    """An RPC request that cannot be sent (RabbitMQ restarting) is a fault to retry, not a 500."""
    response = ApiRoute.response_from_exception(object.__new__(ApiRoute), error, "rid-1")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json["code"] == "service_unavailable" and response.json["request_id"] == "rid-1"

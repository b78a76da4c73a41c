"""Errors as ``application/problem+json`` (RFC 9457) with a stable machine-readable code.

Every problem carries ``code`` (stable, for programs), ``title`` and ``detail`` in English,
``message_vi`` / ``message_en`` for people, ``status``, ``request_id`` and, for validation
failures, ``errors``: one entry per bad field.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Response

from portal_common.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)

PROBLEM_TYPE = "application/problem+json"

# code -> (English, Vietnamese): shown to people; programs read ``code``.
MESSAGES: dict[str, tuple[str, str]] = {
    "validation_failed": ("Some fields are not valid.", "Một số trường không hợp lệ."),
    "invalid_json": ("The body is not valid JSON.", "Nội dung gửi lên không phải JSON hợp lệ."),
    "json_too_deep": ("The JSON body is nested too deeply.", "Nội dung JSON gửi lên lồng nhau quá nhiều cấp."),
    "not_found": ("Not found.", "Không tìm thấy."),
    "method_not_allowed": ("Method not allowed.", "Phương thức không được hỗ trợ."),
    "unauthorized": ("Sign-in required.", "Cần đăng nhập."),
    "invalid_token": ("The access token is not valid.", "Mã truy cập không hợp lệ."),
    "token_expired": ("The access token has expired.", "Mã truy cập đã hết hạn."),
    "forbidden": ("Not allowed.", "Không có quyền thực hiện."),
    "payload_too_large": ("The request is too large.", "Yêu cầu quá lớn."),
    "unsupported_media_type": ("Unsupported content type.", "Kiểu nội dung không được hỗ trợ."),
    "rate_limited": ("Too many requests; retry later.", "Quá nhiều yêu cầu; vui lòng thử lại sau."),
    "service_unavailable": (
        "The service is temporarily unavailable.",
        "Dịch vụ tạm thời không khả dụng.",
    ),
    "revocations_unavailable": (
        "Sign-in checks are starting up; retry in a moment.",
        "Hệ thống kiểm tra đăng nhập đang khởi động; vui lòng thử lại sau giây lát.",
    ),
    "internal_error": ("Internal error.", "Lỗi hệ thống."),
    "conflict": ("Conflict with the current state.", "Xung đột với trạng thái hiện tại."),
    "query_too_long": ("The query string is too long.", "Chuỗi truy vấn quá dài."),
    "bad_request": ("The request is not valid.", "Yêu cầu không hợp lệ."),
    "invalid_input": ("Some fields are not valid.", "Một số trường không hợp lệ."),
}

# A code a service invents without a translation here still gets a Vietnamese message: the
# one of its HTTP status (its English ``detail`` stays specific).
STATUS_MESSAGES_VI: dict[int, str] = {
    400: "Yêu cầu không hợp lệ.",
    401: "Cần đăng nhập.",
    403: "Không có quyền thực hiện.",
    404: "Không tìm thấy.",
    405: "Phương thức không được hỗ trợ.",
    409: "Xung đột với trạng thái hiện tại của hồ sơ hoặc dữ liệu.",
    410: "Dữ liệu không còn tồn tại.",
    413: "Yêu cầu quá lớn.",
    414: "Chuỗi truy vấn quá dài.",
    415: "Kiểu nội dung không được hỗ trợ.",
    422: "Dữ liệu gửi lên không hợp lệ.",
    429: "Quá nhiều yêu cầu; vui lòng thử lại sau.",
    500: "Lỗi hệ thống.",
    502: "Hệ thống liên quan không phản hồi.",
    503: "Dịch vụ tạm thời không khả dụng.",
}


def problem(
    status: int,
    code: str,
    detail: str | None = None,
    *,
    request_id: str | None = None,
    errors: Any = None,
    headers: dict[str, str] | None = None,
    message_vi: str | None = None,
) -> Response:
    """Build the problem response; ``detail`` must never hold internals or secrets."""
    en, vi = MESSAGES.get(code, (detail or code.replace("_", " ").capitalize() + ".", None))
    body: dict[str, Any] = {
        "type": f"urn:portal:problem:{code}",
        "title": en,
        "status": status,
        "code": code,
        "detail": detail or en,
        "message_en": detail or en,
        "message_vi": message_vi or vi or STATUS_MESSAGES_VI.get(status)
        or STATUS_MESSAGES_VI[500 if status >= 500 else 400],
    }
    if request_id:
        body["request_id"] = request_id
    if errors:
        body["errors"] = errors
    return Response(
        json.dumps(body, ensure_ascii=False, default=str),
        status=status,
        mimetype=PROBLEM_TYPE,
        headers=headers,
    )


def field_errors(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """Flatten marshmallow's nested error dict into ``[{field, message}]``, every field listed."""
    out: list[dict[str, str]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out.extend(field_errors(value, path))
    elif isinstance(messages, list | tuple):
        if all(isinstance(m, str) for m in messages):
            out.extend({"field": prefix or "_body", "message": m} for m in messages)
        else:
            for i, value in enumerate(messages):
                out.extend(field_errors(value, f"{prefix}[{i}]"))
    else:
        out.append({"field": prefix or "_body", "message": str(messages)})
    return out


# The one place a service's error type becomes an HTTP status; a subclass takes its nearest
# listed ancestor's (DatabaseUnavailable is an Unavailable: 503).
class UnsupportedMediaType(ServiceError):
    """The body is not in a media type the endpoint reads (the gateway's own refusal)."""


HTTP_STATUS: dict[type[ServiceError], int] = {
    ServiceError: 400,
    UnsupportedMediaType: 415,
    InvalidInput: 422,
    NotFound: 404,
    Conflict: 409,
    Unauthorized: 401,
    Forbidden: 403,
    TooManyRequests: 429,
    Unavailable: 503,
}


def http_status(error: BaseException) -> int:
    """The HTTP status of an error, by its type (500 for what no service raised on purpose)."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500

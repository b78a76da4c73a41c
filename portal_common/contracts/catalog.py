"""Events published by the catalog service."""

from __future__ import annotations

from marshmallow import Schema, fields  # noqa: F401

from portal_common.contracts import CATALOGUE  # noqa: F401

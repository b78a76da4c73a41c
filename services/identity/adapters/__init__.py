"""The outside parties identity depends on, one interface each: the carrier registry (who is
a mobile number registered to), the social-insurance registry (whose is a BHXH code) and the
SMS gateway. ``build(settings, db)`` picks the implementation configured for each
(``CARRIER_ADAPTER``, ``BHXH_ADAPTER``, ``SMS_ADAPTER``: ``local`` or ``http``); nothing else
in identity knows which one runs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from portal_common.db import Database


@dataclass(frozen=True)
class SubscriberRecord:
    """What the carrier says about a number: whose CCCD it is registered to."""

    phone: str
    cccd: str | None
    carrier: str


@dataclass(frozen=True)
class InsuredRecord:
    """What the social-insurance registry says about a BHXH code."""

    bhxh_code: str
    cccd: str
    full_name: str
    date_of_birth: dt.date | None


class CarrierRegistry(Protocol):
    def subscriber(self, phone: str) -> SubscriberRecord | None:
        """The number's registered owner, or None when the carrier does not know it."""


class SocialInsuranceRegistry(Protocol):
    def insured(self, bhxh_code: str) -> InsuredRecord | None:
        """The insured person behind a code, or None when there is none."""


class SmsGateway(Protocol):
    def send(self, phone: str, text: str, reference: str | None = None) -> None:
        """Send one message (raise ``portal_common.errors.Unavailable`` when it cannot).

        ``reference``: the client's id of the message; a gateway that sees the same reference
        again accepts it without sending a second message (applicant notices pass the event
        id, so a send repeated after a crash reaches the phone once)."""


@dataclass(frozen=True)
class Adapters:
    carrier: CarrierRegistry
    social_insurance: SocialInsuranceRegistry
    sms: SmsGateway


def build(settings, db: Database) -> Adapters:
    """The adapters the settings name."""
    from services.identity.adapters import http, local

    def pick(kind: str, local_impl, http_impl):
        if kind == "local":
            return local_impl(db)
        if kind == "http":
            return http_impl()
        raise ValueError(f"unknown adapter kind {kind!r} (use 'local' or 'http')")

    return Adapters(
        carrier=pick(settings.carrier_adapter, local.LocalCarrierRegistry, http.HttpCarrierRegistry),
        social_insurance=pick(settings.bhxh_adapter, local.LocalSocialInsuranceRegistry,
                              http.HttpSocialInsuranceRegistry),
        sms=pick(settings.sms_adapter, local.LocalSmsGateway, http.HttpSmsGateway),
    )

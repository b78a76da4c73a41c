"""The payment service's use cases, one module per group: ``charges`` (dossier events, what is
due, starting a payment, expiry), ``notifications`` (the platform's signed notification and
queries), ``refunds`` (refunds and receipt PDFs), ``settlement`` (reconciliation, the local
stand-in platform, the periodic work); ``base`` holds what they share.

Each command runs in one transaction: lock the rows it decides on (the payment's row, its
charges), replay the stream, let ``domain.payments`` decide, project, append. Transactions
begin and end here.
"""

from __future__ import annotations

from services.payment.application.base import local_date
from services.payment.application.charges import ChargeCases, payment_view
from services.payment.application.notifications import NotificationCases
from services.payment.application.refunds import AfterPaymentCases
from services.payment.application.settlement import SettlementCases


class Payments(ChargeCases, NotificationCases, AfterPaymentCases, SettlementCases):
    """The payment service's use cases over its database and event log."""


__all__ = ["Payments", "local_date", "payment_view"]

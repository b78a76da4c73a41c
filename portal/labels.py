"""Names people read for the API's codes (statuses, levels, targets); all in the catalogue.

The tables hold msgids (``_l`` only marks them for extraction); ``name`` translates one when
a page shows it, through the request's catalogue.
"""

from __future__ import annotations

from flask import g
from flask_babel import get_translations


def _l(message: str) -> str:
    """Mark ``message`` for the catalogue; translated when shown (``name``)."""
    return message

STATUSES = {
    "submitted": _l("Submitted, awaiting receipt"),
    "received": _l("Received"),
    "refused": _l("Refused at receipt"),
    "processing": _l("Being processed"),
    "supplement_requested": _l("Supplement requested"),
    "supplemented": _l("Supplemented"),
    "forwarded": _l("Forwarded to another agency"),
    "result_ready": _l("Result ready"),
    "returned": _l("Result returned"),
    "rejected": _l("Rejected"),
    "withdrawn": _l("Withdrawn"),
    "awaiting_payment": _l("Awaiting payment"),
    "payment_expired": _l("Payment deadline passed"),
}
ONLINE = {"full": _l("Fully online"), "partial": _l("Partly online"), "none": _l("Not online")}
LEVELS = {"central": _l("Central"), "province": _l("Province"), "district": _l("District"),
          "commune": _l("Commune / ward")}
TARGETS = {"citizen": _l("Citizen"), "business": _l("Business"), "both": _l("Citizen and business")}
EVENTS = {
    "DossierSubmitted": _l("Dossier submitted"),
    "DossierReceived": _l("Dossier received by the agency"),
    "DossierRefused": _l("Dossier refused at receipt"),
    "DossierProcessingStarted": _l("Processing started"),
    "SupplementRequested": _l("Supplement requested"),
    "DossierSupplemented": _l("Supplement sent"),
    "DossierForwarded": _l("Forwarded to another agency"),
    "DossierPaused": _l("Processing paused"),
    "DossierResumed": _l("Processing resumed"),
    "DeadlineExtended": _l("Deadline extended"),
    "DossierResultReady": _l("Result ready"),
    "DossierResultReturned": _l("Result returned"),
    "DossierRejected": _l("Dossier rejected"),
    "DossierWithdrawn": _l("Dossier withdrawn"),
    "DossierPaymentRequested": _l("Payment requested"),
    "DossierPaymentReceived": _l("Payment received"),
    "DossierPaymentExpired": _l("Payment deadline passed"),
    "DossierReceiptAttached": _l("Receipt attached"),
}
PAYMENT_STATUSES = {"pending": _l("Pending"), "succeeded": _l("Paid"), "failed": _l("Failed"),
                    "expired": _l("Expired"), "refunded": _l("Refunded")}
ACTORS = {"citizen": _l("Applicant"), "business": _l("Applicant"), "officer": _l("Officer"),
          "agency_system": _l("Agency system"), "system": _l("System")}


def name(table: dict, code) -> str:
    """The label of ``code`` in the page's language, or the code itself when the API sends a
    new one."""
    msgid = table.get(code)
    if msgid is None:
        return str(code or "")
    translations = g.get("_translations")
    if translations is None:
        translations = g._translations = get_translations()
    return translations.ugettext(msgid)

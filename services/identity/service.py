"""nameko entrypoints of the identity service: each is one call into ``application/``.

Registration: ``register_mobile``, ``register_bhxh``, ``confirm_registration``,
``new_challenge``, ``register_certificate``, ``resend_code``. Sign-in: ``login`` (password →
one-time code, or certificate → tokens), ``confirm_login``, ``refresh``, ``logout``,
``forgot_password``, ``reset_password``, ``change_password``. Reads: ``jwks``, ``me``,
``revocations`` (the recently ended sessions, for a starting gateway).
VNeID (OpenID Connect): ``vneid_start``, ``vneid_complete``, ``vneid_link``,
``vneid_backchannel_logout``; ``dev_vneid_identity`` (local stand-in only).
Staff and agency systems: ``create_staff``, ``activate_staff``, ``staff_login``,
``disable_staff``, ``reinstate_staff``, ``list_staff``,
``register_agency_system``, ``revoke_agency_system``, ``client_token``.
Operations: ``rotate_signing_key``, ``add_trusted_ca``, ``list_trusted_cas``, ``add_crl``,
``list_crls``. Local stand-ins (only with ``LOCAL_ADAPTERS``): ``dev_token``,
``dev_carrier_record``, ``dev_bhxh_record``, ``dev_trusted_ca``, ``dev_sms_outbox``.
Applicants: ``notification_preferences``, ``set_notification_preferences``;
dossier events (durable queues; an error propagates and the message is tried again with
back-off) become SMS notices, the events in flight handled in batches
(``application/applicant_notices.py``).
"""

from __future__ import annotations

from portal_common.context import CallContext, event_context
from portal_common.entrypoints import event_handler, rpc
from portal_common.health import HealthRpc
from portal_common.logs import LogContext
from portal_common.nameko_ext import EventLog, Outbox, Storage
from portal_common.ticks import timer
from services.identity import adapters
from services.identity.application import (
    applicant_notices,
    certificates,
    codes,
    housekeeping,
    passwords,
    pki,
    profile,
    registration,
    sessions,
    signin,
    staff,
    stand_ins,
    vneid,
)
from services.identity.dependencies import Parties, SigningKeys
from services.identity.settings import NOTICE_TICK_S, Settings


def dossier_event(event_type: str):
    """A durable queue of identity's for one dossier event type (nothing is lost while identity
    is down); an error (the dossier's owner not known yet, the database away) has the message
    tried again later, with back-off (``portal_common.redelivery``)."""
    return event_handler("dossier", event_type)


class IdentityService(HealthRpc):
    name = "identity"

    db = Storage()
    events = EventLog()
    outbox = Outbox()
    keys = SigningKeys()
    parties = Parties()
    log_context = LogContext()
    call = CallContext()

    @property
    def _settings(self) -> Settings:
        return self.parties.settings

    @property
    def _adapters(self) -> adapters.Adapters:
        return self.parties.bind_db(self.db)

    def _ctx(self, context):
        return event_context(context, self.call)

    @timer(interval=3600)
    def purge_expired(self) -> None:
        """Hourly: forget abandoned registrations, sign-ins, challenges and old refresh tokens."""
        housekeeping.purge(self.db)

    # -- keys and trust ------------------------------------------------------------------

    @rpc
    def jwks(self) -> dict:
        return self.keys.jwks()

    @rpc
    def rotate_signing_key(self) -> dict:
        """Operators: a new signing key, published now, signing after KEY_ACTIVATION_DELAY."""
        return {"kid": self.keys.rotate()}

    @rpc
    def add_trusted_ca(self, certificate_pem: str, context: dict | None = None) -> dict:
        """Operators: trust a CA certificate (``status``: added, or unchanged when trusted already)."""
        return pki.add_trusted_ca(self.db, self.events, certificate_pem, self._ctx(context))

    @rpc
    def list_trusted_cas(self) -> dict:
        return pki.trusted_cas(self.db, self._settings)

    @rpc
    def list_crls(self) -> dict:
        return pki.revocation_lists(self.db, self._settings)

    @rpc
    def add_crl(self, crl: str, issuer_pem: str | None = None, context: dict | None = None) -> dict:
        """Operators: import a CA's revocation list (PEM or base64 DER; ``issuer_pem`` for an intermediate)."""
        return pki.add_crl(self.db, self.events, self._settings, crl, issuer_pem, self._ctx(context))

    # -- registration --------------------------------------------------------------------

    @rpc
    def register_mobile(self, data: dict, context: dict | None = None) -> dict:
        return registration.start_mobile(self.db, self._adapters, self._settings, data)

    @rpc
    def register_bhxh(self, data: dict, context: dict | None = None) -> dict:
        return registration.start_bhxh(self.db, self._adapters, self._settings, data)

    @rpc
    def confirm_registration(self, data: dict, context: dict | None = None) -> dict:
        return registration.confirm(self.db, self.events, self._settings, data, self._ctx(context))

    @rpc
    def new_challenge(self, data: dict | None = None, context: dict | None = None) -> dict:
        return certificates.new_challenge(self.db, self._settings, data or {})

    @rpc
    def register_certificate(self, data: dict, context: dict | None = None) -> dict:
        return certificates.register(self.db, self.events, self.keys.signing_key(), self._settings, data, context,
                                     self._ctx(context))

    @rpc
    def resend_code(self, data: dict, context: dict | None = None) -> dict:
        return codes.resend(self.db, self._adapters.sms, self._settings.otp_ttl_s, data)

    # -- sign-in and sessions ------------------------------------------------------------

    @rpc
    def login(self, data: dict, context: dict | None = None) -> dict:
        return signin.login(self.db, self.events, self.keys.signing_key(), self._adapters, self._settings, data,
                            context, self._ctx(context))

    @rpc
    def confirm_login(self, data: dict, context: dict | None = None) -> dict:
        return signin.confirm(self.db, self.events, self.keys.signing_key(), self._settings, data, context,
                              self._ctx(context))

    @rpc
    def refresh(self, data: dict, context: dict | None = None) -> dict:
        return sessions.refresh(self.db, self.events, self.keys.signing_key(), self._settings, data,
                                self._ctx(context))

    @rpc
    def logout(self, account_id: str, data: dict | None = None, context: dict | None = None,
               session_id: str | None = None) -> dict:
        return sessions.logout(self.db, self.events, account_id, data or {}, self._ctx(context), session_id)

    @rpc
    def revocations(self) -> dict:
        """For a starting gateway: the sessions and accounts whose access tokens it must refuse."""
        return sessions.revocations(self.db, self._settings)

    @rpc
    def me(self, account_id: str) -> dict:
        return profile.me(self.db, account_id)

    @rpc
    def forgot_password(self, data: dict, context: dict | None = None) -> dict:
        return passwords.forgot(self.db, self._adapters, self._settings, data)

    @rpc
    def reset_password(self, data: dict, context: dict | None = None) -> dict:
        return passwords.reset(self.db, self.events, self._settings, data, self._ctx(context))

    @rpc
    def change_password(self, account_id: str, data: dict, context: dict | None = None) -> dict:
        return passwords.change(self.db, self.events, self._settings, account_id, data, context, self._ctx(context))

    # -- sign-in with VNeID ----------------------------------------------------------------

    @rpc
    def vneid_start(self, data: dict, context: dict | None = None) -> dict:
        return vneid.start(self.db, self.parties.vneid, data)

    @rpc
    def vneid_complete(self, data: dict, context: dict | None = None) -> dict:
        return vneid.complete(self.db, self.events, self.keys.signing_key(), self.parties.vneid, self._settings,
                              data, context, self._ctx(context))

    @rpc
    def vneid_link(self, data: dict, context: dict | None = None) -> dict:
        return vneid.link(self.db, self.events, self.keys.signing_key(), self._adapters, self._settings, data,
                          context, self._ctx(context))

    @rpc
    def vneid_backchannel_logout(self, data: dict, context: dict | None = None) -> dict:
        return vneid.backchannel_logout(self.db, self.events, self.parties.vneid, data, self._ctx(context))

    @rpc
    def dev_vneid_identity(self, data: dict) -> dict:
        return vneid.dev_identity(self._settings, self.parties.vneid_settings, data)

    # -- staff and agency systems ----------------------------------------------------------

    @rpc
    def create_staff(self, data: dict, context: dict | None = None) -> dict:
        return staff.create(self.db, self.events, self._adapters, self._settings, data, self._ctx(context))

    @rpc
    def activate_staff(self, data: dict, context: dict | None = None) -> dict:
        return staff.activate(self.db, self.events, self._settings, data, self._ctx(context))

    @rpc
    def staff_login(self, data: dict, context: dict | None = None) -> dict:
        return staff.login(self.db, self.events, self._adapters, self._settings, data, context, self._ctx(context))

    @rpc
    def disable_staff(self, account_id: str, data: dict, context: dict | None = None) -> dict:
        return staff.disable(self.db, self.events, account_id, data, self._ctx(context))

    @rpc
    def reinstate_staff(self, account_id: str, data: dict, context: dict | None = None) -> dict:
        return staff.reinstate(self.db, self.events, account_id, data, self._ctx(context))

    @rpc
    def list_staff(self, query: dict | None = None) -> dict:
        return staff.page(self.db, query or {})

    @rpc
    def register_agency_system(self, data: dict, context: dict | None = None) -> dict:
        return staff.register_system(self.db, self.events, data, self._ctx(context))

    @rpc
    def revoke_agency_system(self, client_id: str, context: dict | None = None) -> dict:
        return staff.revoke_system(self.db, self.events, client_id, self._ctx(context))

    @rpc
    def client_token(self, data: dict, context: dict | None = None) -> dict:
        return staff.client_token(self.db, self.events, self.keys.signing_key(), self._settings, data, context,
                                  self._ctx(context))

    # -- local stand-ins -----------------------------------------------------------------

    @rpc
    def dev_token(self, data: dict, context: dict | None = None) -> dict:
        return stand_ins.dev_token(self.db, self.events, self.keys.signing_key(), self._settings, data,
                                   self._ctx(context))

    @rpc
    def dev_carrier_record(self, data: dict) -> dict:
        return stand_ins.carrier_record(self._settings, self._adapters, data)

    @rpc
    def dev_bhxh_record(self, data: dict) -> dict:
        return stand_ins.bhxh_record(self._settings, self._adapters, data)

    @rpc
    def dev_trusted_ca(self, data: dict, context: dict | None = None) -> dict:
        return stand_ins.trusted_ca(self._settings, self.db, data, self.events, self._ctx(context))

    @rpc
    def dev_sms_outbox(self, phone: str | None = None, limit: int = 50) -> dict:
        return stand_ins.sms_outbox(self._settings, self._adapters, phone, limit)

    # -- applicant notifications -----------------------------------------------------------

    @rpc
    def notification_preferences(self, account_id: str) -> dict:
        return applicant_notices.preferences(self.db, account_id)

    @rpc
    def set_notification_preferences(self, account_id: str, data: dict, context: dict | None = None) -> dict:
        return applicant_notices.set_preferences(self.db, self.events, account_id, data, self._ctx(context))

    @timer(interval=NOTICE_TICK_S)
    def send_due_notices(self) -> None:
        """Retry the SMS whose first send failed."""
        applicant_notices.deliver_due(self.db, self.events, self._adapters.sms)

    def _on_dossier(self, envelope: dict) -> None:
        """Errors propagate: the shared entrypoint tries the message again with back-off."""
        applicant_notices.take(self.db, self.events, self._adapters.sms, envelope)

    @dossier_event("DossierSubmitted")
    def notify_submitted(self, envelope: dict) -> None:
        self._on_dossier(envelope)

    @dossier_event("DossierForwarded")
    def learn_forwarded_owner(self, envelope: dict) -> None:
        """No SMS (an internal step), but it names the owner too."""
        self._on_dossier(envelope)

    @dossier_event("DossierReceived")
    def notify_received(self, envelope: dict) -> None:
        self._on_dossier(envelope)

    @dossier_event("DossierRefused")
    def notify_refused(self, envelope: dict) -> None:
        self._on_dossier(envelope)

    @dossier_event("SupplementRequested")
    def notify_supplement_requested(self, envelope: dict) -> None:
        self._on_dossier(envelope)

    @dossier_event("DeadlineExtended")
    def notify_deadline_extended(self, envelope: dict) -> None:
        self._on_dossier(envelope)

    @dossier_event("DossierResultReady")
    def notify_result_ready(self, envelope: dict) -> None:
        self._on_dossier(envelope)

    @dossier_event("DossierRejected")
    def notify_rejected(self, envelope: dict) -> None:
        self._on_dossier(envelope)

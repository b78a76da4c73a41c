-- SMS notices to applicants about their dossiers (services/identity/notifications.py).
--
-- Whose dossier is it: the dossier events after DossierSubmitted carry only the code, so the
-- owner named by DossierSubmitted (or DossierForwarded) is kept here.
CREATE TABLE dossier_owners (
    dossier_code text PRIMARY KEY,
    account_id   text NOT NULL,
    owner_kind   text NOT NULL,
    learned_at   timestamptz NOT NULL DEFAULT now()
);

-- A dossier event put back on its queue because its owner was not known yet: since when, so
-- the wait is bounded (the row goes once the event is handled or given up).
CREATE TABLE notification_waits (
    event_id      uuid PRIMARY KEY,
    dossier_code  text,
    reason        text NOT NULL,
    attempts      integer NOT NULL DEFAULT 1,
    first_at      timestamptz NOT NULL DEFAULT now(),
    last_at       timestamptz NOT NULL DEFAULT now()
);

-- One SMS per dossier event, decided in the transaction that marks the event handled and sent
-- after it commits (no SMS is sent while a transaction is open); a failed send is retried by a
-- timer. The text names the code and the status only (nothing personal); the number is read
-- from the account when sending.
CREATE TABLE applicant_notices (
    event_id         uuid PRIMARY KEY,
    account_id       uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    dossier_code     text NOT NULL,
    event_type       text NOT NULL,
    body             text NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX applicant_notices_due_idx ON applicant_notices (next_attempt_at) WHERE status = 'pending';

-- The applicant's choice: SMS about their dossiers (on unless they turn it off).
ALTER TABLE accounts ADD COLUMN notify_sms boolean NOT NULL DEFAULT true;

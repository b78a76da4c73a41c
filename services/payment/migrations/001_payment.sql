-- The payment service's read models (the truth is its event log) and the local stand-in of
-- the national payment platform (its own tables, prefixed platform_: an outside party's state).

-- Dossiers the payment service has heard of: who pays, which agency, what happened to them.
CREATE TABLE IF NOT EXISTS dossiers (
    code               text        PRIMARY KEY,
    owner_account_id   text,
    agency_code        text,
    payer_name         text,
    agency_name        text,
    processing_started boolean     NOT NULL DEFAULT false,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- What a dossier owes (stream charge-<id>): open until paid or past its due date.
CREATE TABLE IF NOT EXISTS charges (
    id            uuid        PRIMARY KEY,
    dossier_code  text        NOT NULL,
    amount        bigint      NOT NULL CHECK (amount > 0),
    fees          jsonb       NOT NULL,
    reason        text,
    due_date      date,
    blocking      boolean     NOT NULL,
    status        text        NOT NULL CHECK (status IN ('open', 'paid', 'expired')),
    paid_by       uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS charges_dossier ON charges (dossier_code, created_at);
CREATE INDEX IF NOT EXISTS charges_due ON charges (due_date) WHERE status = 'open' AND due_date IS NOT NULL;

-- Payment attempts (stream payment-<id>).
CREATE TABLE IF NOT EXISTS payments (
    id                  uuid        PRIMARY KEY,
    dossier_code        text        NOT NULL,
    owner_account_id    text        NOT NULL,
    reference           text        NOT NULL UNIQUE,
    amount              bigint      NOT NULL,
    charge_ids          uuid[]      NOT NULL,
    status              text        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'expired', 'refunded')),
    idempotency_key     text,
    transaction_no      text,
    paid_at             timestamptz,
    late                boolean     NOT NULL DEFAULT false,
    failure_reason      text,
    receipt_no          text,
    receipt_document_id uuid,
    refund_status       text        CHECK (refund_status IN ('requested', 'succeeded')),
    refund_reason       text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner_account_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS payments_dossier ON payments (dossier_code, created_at);
CREATE INDEX IF NOT EXISTS payments_pending ON payments (created_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS payments_paid_on ON payments (paid_at) WHERE paid_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS payments_refunding ON payments (updated_at) WHERE refund_status = 'requested';

-- Receipt numbers without gaps, per year; the rendered PDF (rendered once, on first request).
CREATE TABLE IF NOT EXISTS receipt_counters (
    year integer PRIMARY KEY,
    last integer NOT NULL
);
CREATE TABLE IF NOT EXISTS receipts (
    payment_id  uuid        PRIMARY KEY,
    receipt_no  text        NOT NULL UNIQUE,
    document_id uuid        NOT NULL UNIQUE,
    details     jsonb       NOT NULL,
    pdf         bytea,
    issued_at   timestamptz NOT NULL DEFAULT now()
);

-- Reconciliation with the platform's daily settlement file.
CREATE TABLE IF NOT EXISTS settlement_runs (
    day        date        PRIMARY KEY,
    matched    integer     NOT NULL,
    mismatches integer     NOT NULL,
    run_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS settlement_mismatches (
    id           bigserial   PRIMARY KEY,
    day          date        NOT NULL,
    kind         text        NOT NULL,
    reference    text        NOT NULL,
    payment_id   uuid,
    amount_here  bigint,
    amount_there bigint,
    found_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (day, kind, reference)
);

-- The local stand-in of the payment platform (LOCAL_ADAPTERS): its transactions, the signed
-- notifications it still has to send, and its settlement file.
CREATE TABLE IF NOT EXISTS platform_transactions (
    reference      text        PRIMARY KEY,
    payment_id     uuid        NOT NULL UNIQUE,
    amount         bigint      NOT NULL,
    status         text        NOT NULL CHECK (status IN ('pending', 'success', 'failure')),
    transaction_no text,
    refunded       bigint      NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    completed_at   timestamptz
);
CREATE TABLE IF NOT EXISTS platform_notifications (
    id              bigserial   PRIMARY KEY,
    reference       text        NOT NULL,
    body            jsonb       NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    last_error      text
);
CREATE INDEX IF NOT EXISTS platform_notifications_due ON platform_notifications (next_attempt_at)
    WHERE delivered_at IS NULL;
CREATE TABLE IF NOT EXISTS platform_settlements (
    id             bigserial   PRIMARY KEY,
    day            date        NOT NULL,
    reference      text        NOT NULL,
    transaction_no text        NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('payment', 'refund')),
    amount         bigint      NOT NULL,
    at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS platform_settlements_day ON platform_settlements (day);

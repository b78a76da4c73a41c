-- Real staff credentials: staff accounts (officer, editor, operator) that an operator creates
-- and the person activates with a code sent to their phone, and client credentials for
-- agency back-office systems (only a hash of the secret is kept).
ALTER TABLE accounts DROP CONSTRAINT accounts_status_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_status_check CHECK (status IN ('active', 'disabled', 'pending'));

CREATE TABLE agency_clients (
    client_id    text PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts (id),
    agency_code  text NOT NULL,
    name         text NOT NULL,
    secret_hash  bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX agency_clients_agency_idx ON agency_clients (agency_code);

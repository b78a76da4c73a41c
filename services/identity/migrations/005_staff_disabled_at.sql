-- When a staff account was last disabled: identity's revocations() lists the accounts disabled
-- within one access-token lifetime, so a gateway that starts later still refuses their tokens
-- (kept after a reinstatement: the tokens issued before the disable stay refused).
ALTER TABLE accounts ADD COLUMN disabled_at timestamptz;
CREATE INDEX accounts_disabled_at_idx ON accounts (disabled_at) WHERE disabled_at IS NOT NULL;

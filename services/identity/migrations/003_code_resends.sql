-- Codes can be sent again for a pending registration or sign-in; every send counts toward
-- the per-number budget.
ALTER TABLE registrations ADD COLUMN sends int NOT NULL DEFAULT 1;
ALTER TABLE logins ADD COLUMN sends int NOT NULL DEFAULT 1;

-- The per-number budget looks codes up by number and time.
CREATE INDEX registrations_phone_idx ON registrations (phone, created_at);
CREATE INDEX logins_account_idx ON logins (account_id, created_at);

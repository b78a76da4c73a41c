-- A rotated-in signing key is published first and signs only from activates_at on, so every
-- gateway has fetched it before the first token it signed reaches one.
ALTER TABLE signing_keys ADD COLUMN activates_at timestamptz NOT NULL DEFAULT now();

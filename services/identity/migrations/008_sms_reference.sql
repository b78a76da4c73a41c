-- A message's client reference: the SMS gateway keeps one message per reference, so a notice
-- sent again after a crash (between the send and its record) is not delivered twice.
ALTER TABLE local_sms_outbox ADD COLUMN reference text;
CREATE UNIQUE INDEX local_sms_outbox_reference_idx ON local_sms_outbox (reference) WHERE reference IS NOT NULL;

-- Close the notices whose SMS went out and append each one's ApplicantNotified in one statement
-- (services/identity/application/applicant_notices.py, _send_many), so that the transaction is
-- one round trip with its COMMIT: only the notices still pending are closed (another sender may
-- have closed one meanwhile), and only those get their event. p_streams and p_events go with
-- p_ids, index by index: each event's stream and its text as the event log's append_events
-- takes it (EventStore.encode), appended in that order.
CREATE OR REPLACE FUNCTION close_sent_notices(p_ids uuid[], p_streams text[], p_events text[])
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    closed uuid[];
    appended integer := 0;
BEGIN
    IF coalesce(array_length(p_ids, 1), 0) <> coalesce(array_length(p_streams, 1), 0)
       OR coalesce(array_length(p_ids, 1), 0) <> coalesce(array_length(p_events, 1), 0) THEN
        RAISE EXCEPTION 'close_sent_notices: % ids, % streams, % events', array_length(p_ids, 1),
            array_length(p_streams, 1), array_length(p_events, 1) USING ERRCODE = '22023';
    END IF;
    WITH done AS (
        UPDATE applicant_notices SET status = 'sent', sent_at = now()
         WHERE event_id = ANY(p_ids) AND status = 'pending' RETURNING event_id)
    SELECT coalesce(array_agg(event_id), '{}') INTO closed FROM done;
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        IF p_ids[i] = ANY(closed) THEN
            PERFORM append_events(p_streams[i], 'account', NULL, p_events[i]::jsonb);
            appended := appended + 1;
        END IF;
    END LOOP;
    RETURN appended;
END
$$;

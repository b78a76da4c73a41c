-- Insert the deliveries that routing planned and append each new one's DeliveryScheduled in one
-- statement (services/router/application.py, _plan), so that it goes with the holders' updates,
-- the feed's writes and the COMMIT in one round trip instead of a round trip of its own before
-- them. A delivery that exists already (its event routed before) is left as it is and gets no
-- event, as before. p_streams and p_events go with p_rows, index by index: each delivery's
-- stream and its event's text as the log's append_events takes it (EventStore.encode), appended
-- in that order. The ids inserted are left in the session setting router.scheduled (a comma-
-- separated list, kept past the commit, undone with a rollback) for the same round trip to read
-- after its COMMIT.
CREATE OR REPLACE FUNCTION schedule_deliveries(p_rows jsonb, p_lease_s float8, p_streams text[],
                                               p_events text[])
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    n integer := CASE WHEN jsonb_typeof(p_rows) = 'array' THEN jsonb_array_length(p_rows) ELSE -1 END;
    inserted uuid[];
BEGIN
    IF n < 0 OR n <> coalesce(array_length(p_streams, 1), 0) OR n <> coalesce(array_length(p_events, 1), 0) THEN
        RAISE EXCEPTION 'schedule_deliveries: % rows, % streams, % events', n, array_length(p_streams, 1),
            array_length(p_events, 1) USING ERRCODE = '22023';
    END IF;
    WITH added AS (
        INSERT INTO deliveries (delivery_id, dossier_code, agency_code, addressed_to, event_id, event_type,
                                channel, body, lease_until, attempts)
        SELECT (r->>'delivery_id')::uuid, r->>'dossier_code', r->>'agency_code', r->>'addressed_to',
               (r->>'event_id')::uuid, r->>'event_type', r->>'channel', r->'body',
               CASE WHEN p_lease_s IS NULL THEN NULL ELSE now() + p_lease_s * interval '1 second' END,
               CASE WHEN p_lease_s IS NULL THEN 0 ELSE 1 END
          FROM jsonb_array_elements(p_rows) WITH ORDINALITY AS x(r, i)
         ORDER BY i
        ON CONFLICT (delivery_id) DO NOTHING
        RETURNING delivery_id)
    SELECT coalesce(array_agg(delivery_id), '{}') INTO inserted FROM added;
    FOR i IN 1 .. n LOOP
        IF ((p_rows -> (i - 1)) ->> 'delivery_id')::uuid = ANY(inserted) THEN
            PERFORM append_events(p_streams[i], 'delivery', NULL, p_events[i]::jsonb);
        END IF;
    END LOOP;
    PERFORM set_config('router.scheduled', array_to_string(inserted, ','), false);
    RETURN coalesce(array_length(inserted, 1), 0);
END
$$;

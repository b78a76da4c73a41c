-- A filing's transaction in one round trip (services/dossier/repository.py, PgTransaction).
--
-- Every filing to one agency on one day takes the same code_counters row, and holds it from
-- the draw to the commit. Drawn from the client, the hold spans two round trips and whatever
-- the filing process does in between (waiting for a CPU included); drawn here, it spans only
-- the server's own work on the statements that name the code.

-- Claim an idempotency key, or refuse the whole transaction (SQLSTATE DK409) when its owner
-- has used it already: the application then answers from the filing that used it.
CREATE OR REPLACE FUNCTION claim_idempotency_key(p_owner text, p_key text, p_hash text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO idempotency_keys (owner_id, key, request_hash) VALUES (p_owner, p_key, p_hash)
        ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'idempotency key % of % was used already', p_key, p_owner USING ERRCODE = 'DK409';
    END IF;
END
$$;

-- Draw the agency's next number of the day, make the code (domain/codes.py format_code:
-- <AGENCY>-<YYMMDD>-<NNNN>, four digits at least), then run p_statements with every
-- p_stand_in in them replaced by that code. The code is also left in the session setting
-- dossier.drawn_code, so that a SELECT after the COMMIT in the same round trip returns it.
CREATE OR REPLACE FUNCTION run_with_drawn_code(p_agency text, p_day date, p_stand_in text, p_statements text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    drawn integer;
    code text;
BEGIN
    INSERT INTO code_counters (agency_code, day, last_value) VALUES (p_agency, p_day, 1)
        ON CONFLICT (agency_code, day) DO UPDATE SET last_value = code_counters.last_value + 1
        RETURNING last_value INTO drawn;
    code := p_agency || '-' || to_char(p_day, 'YYMMDD') || '-'
            || CASE WHEN drawn < 10000 THEN lpad(drawn::text, 4, '0') ELSE drawn::text END;
    IF length(p_stand_in) < 24 THEN  -- too short to be told from anything else in the statements
        RAISE EXCEPTION 'stand-in % is too short to mark a code', p_stand_in USING ERRCODE = '22023';
    END IF;
    IF p_statements <> '' THEN
        EXECUTE replace(p_statements, p_stand_in, code);
    END IF;
    PERFORM set_config('dossier.drawn_code', code, false);
    RETURN code;
END
$$;

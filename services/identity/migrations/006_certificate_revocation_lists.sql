-- Certificate revocation lists an operator imported: the newest one per issuing CA (its name's
-- SHA-256 and the key that signed it, so a re-keyed CA with the same name keeps both). The
-- revoked serials (decimal text) are kept beside the raw DER so a sign-in asks only about the
-- serials of its own chain; issuer_pem holds the signing CA's certificate when it is an
-- intermediate rather than a trust anchor, so its next CRL can be checked without it.
CREATE TABLE certificate_revocation_lists (
    issuer_hash      text NOT NULL,
    signer_key       text NOT NULL,
    issuer_der       bytea NOT NULL,
    issuer           text NOT NULL,
    crl_number       numeric,
    this_update      timestamptz NOT NULL,
    next_update      timestamptz,
    revoked_serials  text[] NOT NULL,
    revoked_count    integer NOT NULL,
    der              bytea NOT NULL,
    issuer_pem       text,
    imported_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer_hash, signer_key)
);

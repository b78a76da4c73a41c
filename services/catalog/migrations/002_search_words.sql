-- The words of the published catalog (folded, from the search tsvectors), how many
-- procedures each occurs in, and its letters in order: the dictionary a misspelt query word
-- is corrected against (fewest edits by levenshtein from fuzzystrmatch, a swap of two
-- letters counting as one edit; then trigram similarity; then frequency). Rebuilt from the
-- procedures after every change (repository.refresh_search_words); a few thousand rows.

CREATE EXTENSION IF NOT EXISTS fuzzystrmatch WITH SCHEMA public;

CREATE OR REPLACE FUNCTION sorted_letters(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT string_agg(c, '' ORDER BY c) FROM regexp_split_to_table($1, '') AS c $$;

CREATE TABLE search_words (
    word       text PRIMARY KEY,
    procedures int NOT NULL,
    letters    text GENERATED ALWAYS AS (sorted_letters(word)) STORED
);
CREATE INDEX search_words_letters ON search_words (letters);

INSERT INTO search_words (word, procedures)
SELECT word, ndoc FROM ts_stat('SELECT tsv FROM procedures WHERE status = ''published''');

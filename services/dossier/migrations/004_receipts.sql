-- Electronic receipts of payments (issued by the payment service) are documents of the dossier.
ALTER TABLE documents DROP CONSTRAINT IF EXISTS documents_kind_check;
ALTER TABLE documents ADD CONSTRAINT documents_kind_check CHECK (kind IN ('input', 'output', 'receipt'));

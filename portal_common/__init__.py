"""Code every service shares: configuration, PostgreSQL access, the event store, its outbox
relay, the event contracts catalogue and structured logging."""

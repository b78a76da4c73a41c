"""The payment service's pure rules: signatures, payment decisions, reconciliation."""

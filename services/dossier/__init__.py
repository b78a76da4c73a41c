"""The dossier service."""

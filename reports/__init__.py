"""Reporting: reads the store, knows nothing of ingest."""

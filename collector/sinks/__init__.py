"""Sinks store what the worker hands them: events, drop counts and the bus position, in one transaction."""

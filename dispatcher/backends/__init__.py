"""Backends run a validated submission: ``local`` (processes) and ``kubernetes`` (Jobs)."""

"""The HTTP API: app, handlers and ingest here; ``http``, ``schema``, ``streams``, ``ui`` below."""

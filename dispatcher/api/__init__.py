"""The HTTP API: the aiohttp application, its handlers, validation, SSE and the sidecars' ingest."""

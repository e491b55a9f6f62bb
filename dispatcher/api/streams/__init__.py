"""Streamed responses: one evaluation's SSE, the global event stream and its hub, the output."""

"""The sidecar's errors. Redis client exceptions are translated in ``publisher`` and never leak.

::

    SidecarError
    └── PublishRejectedError   Redis answered but refused (NOPERM, bad password, wrong type):
                               not transient, so the sidecar logs it and exits non-zero
"""

# Upstream text copied into our messages is bounded so a huge reply cannot flood the log.
UPSTREAM_TEXT_LIMIT = 300


class SidecarError(Exception):
    """Root of every error the sidecar raises on purpose."""


class PublishRejectedError(SidecarError):
    """Redis refused an event; retrying the same call cannot succeed."""


def bounded(text: str) -> str:
    return text if len(text) <= UPSTREAM_TEXT_LIMIT else text[:UPSTREAM_TEXT_LIMIT] + "..."

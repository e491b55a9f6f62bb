"""The sidecar's errors. Transport failures are translated in ``transport`` and never leak.

::

    SidecarError
    ├── IngestUnavailableError   the dispatcher could not be reached or gave no usable reply:
    │                            transient, the same batch is retried
    ├── PublishRejectedError     the dispatcher answered and refused (401, 403, 404, 422, ...):
    │                            retrying cannot help, so the sidecar logs it and exits non-zero
    └── SpoolError               a spool file could not be created safely (something already
                                 there, a symlink, not a regular file): no verdict, never followed
"""

# Upstream text copied into our messages is bounded so a huge reply cannot flood the log.
UPSTREAM_TEXT_LIMIT = 300


class SidecarError(Exception):
    """Root of every error the sidecar raises on purpose."""


class IngestUnavailableError(SidecarError):
    """No reply to use: connection refused or lost, a timeout, a malformed response."""


class PublishRejectedError(SidecarError):
    """The dispatcher refused a batch; retrying the same request cannot succeed."""


class SpoolError(SidecarError):
    """The spool cannot be trusted, so nothing received on the channel may be published."""


def bounded(text: str) -> str:
    return text if len(text) <= UPSTREAM_TEXT_LIMIT else text[:UPSTREAM_TEXT_LIMIT] + "..."

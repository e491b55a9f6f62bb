"""``python -m sidecar``: build the settings from the environment and run the service.

Imports are kept to what the sidecar uses, since its memory is paid per pod: the settings are
read before asyncio is imported, so that ``ssl`` (about 5 MB of RSS: libssl and libcrypto) is
loaded only for an https ingest URL (``keep_ssl_out``).
"""

import logging
import sys
import urllib.parse

from sidecar import settings
from wire import hardening


def keep_ssl_out(ingest_url: str) -> None:
    """For a plain http ingest URL, keep ``ssl`` from ever loading. asyncio imports it whenever
    it can, though only TLS connections use it; a None in ``sys.modules`` is how the import
    system blocks a module, and asyncio then runs as on a Python built without ssl. Must be
    called before asyncio is imported (else it does nothing)."""
    if urllib.parse.urlsplit(ingest_url).scheme == "http" and "asyncio" not in sys.modules:
        sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]


def main() -> None:
    # Its ingest token is in its environment: keep /proc/<pid>/environ from code of the same
    # user (the local backend; in a pod user code cannot see this process at all).
    try:
        hardening.make_undumpable()
    except hardening.HardeningError as e:
        print(f"sidecar: {e}; continuing", file=sys.stderr)
    try:
        config = settings.SidecarSettings()  # eval_id and the rest come from the environment
    except settings.SettingsError as e:
        sys.exit(f"sidecar: {e}")
    logging.basicConfig(
        level=config.log_level,
        stream=sys.stderr,
        format="%(asctime)s sidecar %(levelname)s %(name)s: %(message)s",
    )
    keep_ssl_out(config.ingest_url)
    # Here, not at the top: only after keep_ssl_out.
    import asyncio

    from sidecar import service

    sys.exit(asyncio.run(service.serve(config)))


if __name__ == "__main__":
    main()

"""The sidecar: runs beside every evaluation and turns the wrapper's channel into events.

``python -m sidecar`` (settings from ``CRUCIBLE_SIDECAR_*``, see ``settings``). Modules:
``channel`` holds the one connection from the wrapper (contract: ``wire.channel``), ``session``
reads its frames into the ``spool`` (the sidecar's own capped copy of the output) and the
``outbox`` (the one ordered queue), ``drain`` takes the outbox in batches and ``publisher``
hands them to the dispatcher over ``transport`` (contract: ``wire.ingest``), ``builders`` makes
the events (``wire.events``, built as plain dicts by ``wire.event_dicts``), ``service`` owns
the lifetime. No Redis, no dispatcher imports, no pydantic: the standard library only, since
the sidecar's memory is paid per pod (``bench/sidecar_memory.py``).
"""

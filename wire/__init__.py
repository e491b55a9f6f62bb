"""The wire contract between wrapper, sidecar and dispatcher; one owner for each part of it.

- ``channel``: the wrapper -> sidecar channel (frames on a Unix socket). Standard library only
  and Python 3.8: it travels inside the wrapper's zipapp.
- ``hardening``: making a process non-dumpable (wrapper and sidecar); stdlib, 3.8, packed too.
- ``events``: the event schema every producer publishes and every consumer reads.
- ``event_dicts``: the same events built as plain dicts, standard library only (the sidecar,
  which stays small; tests hold them to ``events``' model).
- ``ingest``: the sidecar -> dispatcher hop (per-evaluation credential, batch); its path is
  ``ingest_route``'s, standard library only.
- ``keys``: every Redis key and channel name.
- ``limits``: the byte and count limits the parts agree on.
- ``scripts``: the Lua scripts (publish, create a record, apply an event to a record).

Nothing here may import the wrapper, the sidecar or the dispatcher.
"""

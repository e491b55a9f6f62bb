"""The wire contract between wrapper, sidecar and dispatcher; one owner for each part of it.

- ``channel``: the wrapper -> sidecar channel (frames on a Unix socket). Standard library only
  and Python 3.8: it travels inside the wrapper's zipapp.
- ``hardening``: making a process non-dumpable (wrapper and sidecar); stdlib, 3.8, packed too.
- ``events``: the event schema every producer publishes and every consumer reads.
- ``ingest``: the sidecar -> dispatcher hop (HTTP path, per-evaluation credential, batch).
- ``keys``: every Redis key and channel name.
- ``limits``: the byte and count limits the parts agree on.
- ``scripts``: the Lua scripts (publish, create a record, apply an event to a record).

Nothing here may import the wrapper, the sidecar or the dispatcher.
"""

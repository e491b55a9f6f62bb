"""The sidecar: runs beside every evaluation and turns the wrapper's state files into events.

``python -m sidecar`` (settings from ``CRUCIBLE_SIDECAR_*``, see ``settings``). Modules:
``watcher`` notices changes (inotify, else a short poll), ``tail`` reads the state directory
into the ``outbox`` (the one ordered queue), ``publisher`` drains it into Redis through
``streams`` (contract: the keys and ``publish.lua``), ``builders`` makes the ``events``,
``progress`` lets a restarted sidecar resume exactly, ``service`` owns the lifetime.
"""

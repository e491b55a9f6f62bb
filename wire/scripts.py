"""The Lua scripts, read from the package: one text each, run by the dispatcher only."""

import importlib.resources


def _read(name: str) -> str:
    return importlib.resources.files("wire").joinpath(name).read_text()


PUBLISH = _read("publish.lua")
# A tenant's limits: one function, prepended (Redis scripts cannot call each other).
_LIMITS = _read("tenant_limits.lua")
CREATE_RECORD = _LIMITS + _read("create_record.lua")
APPLY_EVENT = _read("apply_event.lua")
REMOVE_RECORD = _read("remove_record.lua")
TENANT_ADMIT = _LIMITS + _read("tenant_admit.lua")

# The Kubernetes backend's admission queue; the scripts that place an evaluation share one
# position function (Redis scripts cannot call each other).
_POSITION = _read("admission/position.lua")
ENQUEUE = _POSITION + _read("admission/enqueue.lua")
QUEUE_POSITION = _POSITION + _read("admission/queue_position.lua")
ADMIT = _read("admission/admit.lua")
WITHDRAW = _read("admission/withdraw.lua")
REQUEUE = _read("admission/requeue.lua")

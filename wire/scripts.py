"""The Lua scripts, read from the package: one text each, run by the dispatcher only."""

import importlib.resources


def _read(name: str) -> str:
    return importlib.resources.files("wire").joinpath(name).read_text()


PUBLISH = _read("publish.lua")
CREATE_RECORD = _read("create_record.lua")
APPLY_EVENT = _read("apply_event.lua")

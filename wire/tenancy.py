"""Tenants: who an evaluation belongs to, and how that is part of its id.

Inside crucible an evaluation's id is *qualified*: ``TENANT~ID`` for a tenant's evaluation, the
bare ``ID`` for one an operator submitted without a tenant. Every Redis key, the Job, the
sidecar's token and the events use the qualified id, so two tenants' ``run-1`` are two
evaluations, and a tenant's request can only ever name its own (the API qualifies the ids it is
given with the caller's tenant; it never looks up anyone else's). ``~`` is in neither a
tenant's name nor an id, so the split is unambiguous. At the API the id is shown unqualified,
with the tenant beside it.
"""

import re
from collections.abc import Mapping
from typing import Any

SEPARATOR = "~"
# A tenant's name: a DNS label, short enough to be a Kubernetes label value and a metric label.
TENANT_PATTERN = r"^[a-z0-9](?:[-a-z0-9]{0,38}[a-z0-9])?$"
_TENANT = re.compile(TENANT_PATTERN.removeprefix("^").removesuffix("$"))
OPERATOR = ""  # the tenant of an evaluation an operator token submitted


def is_tenant(name: str) -> bool:
    return _TENANT.fullmatch(name) is not None


def qualify(tenant: str, eval_id: str) -> str:
    return f"{tenant}{SEPARATOR}{eval_id}" if tenant else eval_id


def split(qualified: str) -> tuple[str, str]:
    """``(tenant, id)`` of a qualified id; the tenant is ``OPERATOR`` for a bare id."""
    tenant, separator, eval_id = qualified.partition(SEPARATOR)
    return (tenant, eval_id) if separator else (OPERATOR, qualified)


def present(body: Mapping[str, Any]) -> dict[str, Any]:
    """A record or event as the API shows it: the id as its tenant names it, the tenant
    beside it (None: an operator's own)."""
    shown = dict(body)
    tenant, shown["eval_id"] = split(str(body.get("eval_id", "")))
    shown["tenant"] = tenant or None
    return shown

"""Who is calling: an API token names a tenant, or an operator who sees every tenant.

Token entries (``CRUCIBLE_API_TOKENS``, the tokens file, the chart's Secret) are ``TENANT:TOKEN``,
or a bare ``TOKEN`` for an operator. A tenant's request names its own evaluations only: the ids
it gives are qualified with its tenant (``wire.tenancy``) before anything is looked up, so
another tenant's evaluation is never read and answers 404 exactly as a missing one does. An
operator names a tenant's evaluation ``TENANT~ID``.
"""

import dataclasses
import hmac
import re
from collections.abc import Iterable

import pydantic

from dispatcher.api.schema import patterns
from wire import tenancy


class TenantLimits(pydantic.BaseModel):
    """What one tenant may hold and do at once; over a limit: 429 with Retry-After, nothing
    created. Operators have no limits."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    active_max: int | None = pydantic.Field(default=100, ge=1)
    """Its evaluations not yet ended (accepted, queued, scheduled, pending, running); None: no
    limit."""

    submissions_per_second: float | None = pydantic.Field(default=20.0, gt=0)
    """Sustained rate of new submissions (a token bucket); None: no limit."""

    submissions_burst: int = pydantic.Field(default=100, ge=1)
    """Submissions allowed at once above the rate (the bucket's size)."""

    streams_max: int | None = pydantic.Field(default=100, ge=1)
    """Event streams (SSE) it holds open on one dispatcher; None: no limit."""

    running_max: int | None = pydantic.Field(default=None, ge=1)
    """Its evaluations admitted to run at once on Kubernetes (the rest wait ``queued``); None:
    only the backend's ``max_running`` bounds it."""


class TenantsConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    defaults: TenantLimits = TenantLimits()
    """Every tenant's limits unless ``limits`` says otherwise."""

    limits: dict[str, TenantLimits] = {}
    """Per tenant, the fields that differ from ``defaults`` (a JSON object in the environment:
    ``CRUCIBLE_TENANTS__LIMITS='{"acme": {"active_max": 500}}'``)."""

    @pydantic.field_validator("limits")
    @classmethod
    def _tenant_names(cls, value: dict[str, TenantLimits]) -> dict[str, TenantLimits]:
        for name in value:
            if not tenancy.is_tenant(name):
                raise ValueError(f"{name!r} is not a tenant name ({tenancy.TENANT_PATTERN})")
        return value

    def for_tenant(self, tenant: str | None) -> TenantLimits | None:
        """The tenant's limits; None for an operator (no tenant)."""
        if not tenant:
            return None
        override = self.limits.get(tenant)
        if override is None:
            return self.defaults
        return self.defaults.model_copy(update=override.model_dump(exclude_unset=True))

    def running_caps(self) -> tuple[int, dict[str, int]]:
        """``running_max`` as the admission script takes it: the default and the tenants that
        differ from it (0: no cap; an operator, tenant "", has none)."""
        default = self.defaults.running_max or 0
        caps = {"": 0}
        for name in self.limits:
            limits = self.for_tenant(name)
            caps[name] = (limits.running_max or 0) if limits else 0
        return default, {name: cap for name, cap in caps.items() if cap != default}


class TokenEntryError(ValueError):
    """A malformed token entry; the message never quotes the token."""


@dataclasses.dataclass(frozen=True)
class Principal:
    tenant: str | None  # None: an operator

    @property
    def is_operator(self) -> bool:
        return self.tenant is None

    def qualify(self, eval_id: str) -> str:
        """The internal id of ``eval_id`` as this caller names it."""
        return eval_id if self.tenant is None else tenancy.qualify(self.tenant, eval_id)

    @property
    def submits_as(self) -> str:
        return tenancy.OPERATOR if self.tenant is None else self.tenant


OPERATOR = Principal(None)
# A qualified id (``wire.tenancy``): how an operator names any tenant's evaluation.
QUALIFIED_ID_PATTERN = (
    r"^(?:"
    + tenancy.TENANT_PATTERN[1:-1]
    + re.escape(tenancy.SEPARATOR)
    + r")?"
    + patterns.EVAL_ID[1:-1]
    + "$"
)


def parse_entry(entry: str) -> tuple[str, Principal]:
    """``TENANT:TOKEN`` or ``TOKEN`` -> (token, principal)."""
    name, separator, token = entry.partition(":")
    if not separator:
        return entry, OPERATOR
    if not tenancy.is_tenant(name):
        raise TokenEntryError(
            f"token entry for tenant {name[:40]!r}: a tenant is a DNS label "
            f"({tenancy.TENANT_PATTERN}); an operator token has no ':'"
        )
    if not token:
        raise TokenEntryError(f"token entry for tenant {name!r} has no token")
    return token, Principal(name)


class TokenTable:
    """The accepted tokens; ``find`` compares against every one in constant time."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._entries = [(token.encode(), who) for token, who in map(parse_entry, entries)]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def find(self, given: str) -> Principal | None:
        candidate = given.encode()
        found: Principal | None = None
        for token, who in self._entries:  # no early exit: the time says nothing of which
            if hmac.compare_digest(token, candidate) and found is None:
                found = who
        return found

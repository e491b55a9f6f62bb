"""What a submission may ask for (settings group ``limits``; owner: dispatcher/api/schema/).

The request models check each field against these; the OpenAPI document states them.
"""

from typing import Self

import pydantic

from dispatcher import quantities
from wire import limits as wire_limits

# Shortest timeout an evaluation may have: below a second it would end before its interpreter
# has started, and the wrapper's --timeout is rendered in milliseconds at best.
TIMEOUT_SECONDS_MIN = 1.0


class Limits(pydantic.BaseModel):
    """What a submission may ask for. Defaults apply when a request leaves a field out."""

    model_config = pydantic.ConfigDict(frozen=True, use_attribute_docstrings=True)

    timeout_seconds_default: float = pydantic.Field(default=60.0, ge=TIMEOUT_SECONDS_MIN)
    """Wall-clock timeout when a request gives none."""

    timeout_seconds_max: float = pydantic.Field(default=3600.0, ge=TIMEOUT_SECONDS_MIN)
    """Largest timeout a request may ask for: an hour, longer belongs in a batch system."""

    cpu_default: str = "500m"
    """CPU limit when a request gives none (Kubernetes quantity)."""

    cpu_max: str = "4"
    """Largest CPU limit a request may ask for."""

    memory_default: str = "512Mi"
    """Memory limit when a request gives none (Kubernetes quantity)."""

    memory_max: str = "8Gi"
    """Largest memory limit a request may ask for."""

    code_max_bytes: int = pydantic.Field(default=2**20, gt=0, le=wire_limits.PROGRAM_MAX_BYTES)
    """Largest ``code`` (UTF-8 bytes), and largest ``command`` (all arguments together)."""

    env_max_entries: int = pydantic.Field(default=64, ge=0)
    """Most environment variables a request may set."""

    env_max_bytes: int = pydantic.Field(default=64 * 1024, ge=0)
    """Largest total size of names and values of the environment (UTF-8 bytes)."""

    labels_max_entries: int = pydantic.Field(default=32, ge=0)
    """Most labels a request may set (they become Job labels under a crucible prefix)."""

    @pydantic.model_validator(mode="after")
    def _defaults_within_maxima(self) -> Self:
        if self.timeout_seconds_default > self.timeout_seconds_max:
            raise ValueError("timeout_seconds_default exceeds timeout_seconds_max")
        for name in ("cpu", "memory"):
            parse = quantities.cpu_millis if name == "cpu" else quantities.memory_bytes
            try:
                default = parse(getattr(self, f"{name}_default"))
                maximum = parse(getattr(self, f"{name}_max"))
            except quantities.QuantityError as e:
                raise ValueError(f"{name}_default/{name}_max: {e}") from None
            if default > maximum:
                raise ValueError(f"{name}_default exceeds {name}_max")
        return self

    @property
    def cpu_max_millis(self) -> int:
        return quantities.cpu_millis(self.cpu_max)

    @property
    def memory_max_bytes(self) -> int:
        return quantities.memory_bytes(self.memory_max)

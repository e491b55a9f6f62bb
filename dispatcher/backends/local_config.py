"""Settings group of the local backend (owner: dispatcher/backends/local.py)."""

import pydantic


class LocalConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, use_attribute_docstrings=True)

    concurrency: int = pydantic.Field(default=4, ge=0)
    """Evaluations running at once; 0 queues without running (throughput benchmarks)."""

    queue_size: int = pydantic.Field(default=100, ge=0)
    """Accepted evaluations waiting for a slot; beyond this the API answers 429."""

"""Where a sidecar POSTs its events (``wire.ingest``), with the standard library only.

The route's one owner: ``wire.ingest`` (the hop's credential and batch models, which load
pydantic) takes it from here, and so does the sidecar, which needs nothing else of it.
"""

import urllib.parse

ROUTE = "/ingest/v1/evaluations/{eval_id}/events"


def path(eval_id: str) -> str:
    return ROUTE.format(eval_id=urllib.parse.quote(eval_id, safe=""))

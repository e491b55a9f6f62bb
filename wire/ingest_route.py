"""Where a sidecar POSTs its events (``wire.ingest``) and GETs its evaluation's program, with
the standard library only.

The route's one owner: ``wire.ingest`` (the hop's credential and batch models, which load
pydantic) takes it from here, and so does the sidecar, which needs nothing else of it.
"""

import urllib.parse

ROUTE = "/ingest/v1/evaluations/{eval_id}/events"
# The program text of a ``code`` evaluation, as ``text/plain`` (a pod fetches it into a file:
# argv takes 128 KiB per argument and code may be 1 MiB).
CODE_ROUTE = "/ingest/v1/evaluations/{eval_id}/code"


def path(eval_id: str) -> str:
    return ROUTE.format(eval_id=urllib.parse.quote(eval_id, safe=""))


def code_path(eval_id: str) -> str:
    return CODE_ROUTE.format(eval_id=urllib.parse.quote(eval_id, safe=""))

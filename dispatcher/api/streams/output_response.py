"""``GET /v1/evaluations/{id}/output``, written as it is read (``store.output``'s plan, then the
chunks a few at a time): memory stays bounded however much an evaluation printed.

JSON (both streams, ``truncated`` first since it is known before the text) or one stream as
``text/plain`` with ``X-Crucible-Truncated``.
"""

import json

import redis.asyncio
from aiohttp import web

from dispatcher.store import output


async def respond(
    request: web.Request, client: redis.asyncio.Redis, eval_id: str, which: str | None
) -> web.StreamResponse:
    plan = await output.plan(client, eval_id)
    truncated = "true" if plan.truncated else "false"
    if which is not None:
        response = web.StreamResponse(headers={"X-Crucible-Truncated": truncated})
        response.content_type = "text/plain"
        response.charset = "utf-8"
        await response.prepare(request)
        async for text in output.texts(client, eval_id, plan.entries[which]):
            await response.write(text.encode("utf-8", "replace"))
        await response.write_eof()
        return response
    response = web.StreamResponse()
    response.content_type = "application/json"
    await response.prepare(request)
    await response.write(f'{{"truncated":{truncated}'.encode())
    for name in output.STREAMS:
        await response.write(f',"{name}":"'.encode())
        async for text in output.texts(client, eval_id, plan.entries[name]):
            # The chunk as a JSON string's inside; a lone surrogate goes out as its escape.
            escaped = json.dumps(text, ensure_ascii=False)[1:-1]
            await response.write(escaped.encode("utf-8", "backslashreplace"))
        await response.write(b'"')
    await response.write(b"}")
    await response.write_eof()
    return response

"""JSON request bodies, read so that no body makes the parser fail with a 500.

The size is capped by the application (``client_max_size``, a 413); here nesting deeper than
the parser can follow, integers longer than Python converts (4,300 digits), and the non-JSON
constants ``NaN`` and ``Infinity`` become 422s on the field ``body``, like malformed JSON.
"""

import asyncio
import json

from aiohttp import web

from dispatcher import errors

# Longer integers than any field takes: a byte count of 2**63 has 19 digits.
INTEGER_MAX_DIGITS = 64


class _Refused(ValueError):
    """A number or constant the body may not hold; the message is user-facing."""


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > INTEGER_MAX_DIGITS:
        raise _Refused(f"integers may have at most {INTEGER_MAX_DIGITS} digits")
    return int(text)


def _constant(name: str) -> object:
    raise _Refused(f"{name} is not JSON")


def decode(raw: bytes) -> object:
    """``raw`` as JSON, or ``InvalidRequestError`` on the field ``body``."""
    try:
        return json.loads(raw, parse_int=_integer, parse_constant=_constant)
    except _Refused as e:
        raise invalid_body(str(e)) from None
    except RecursionError:
        raise invalid_body("nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise invalid_body(f"malformed JSON: {e}") from None


async def read_json(request: web.Request, *, within: float) -> object:
    """The body as JSON; a wrong content type or malformed JSON is a 422 like any bad field.
    A body that has not all arrived ``within`` seconds is a 408: a client trickling it in holds
    a connection and a buffer no longer than that."""
    if request.content_type != "application/json" and not request.content_type.endswith("+json"):
        raise invalid_body(f"Content-Type must be application/json, not {request.content_type!r}")
    if request.content.is_eof():
        # All of it came with the head (a small body, as most are): no timer to arm and cancel.
        return decode(await request.read())
    try:
        async with asyncio.timeout(within):
            raw = await request.read()
    except TimeoutError:
        raise errors.RequestTimeoutError(f"the body did not arrive within {within:g}s") from None
    return decode(raw)


def invalid_body(message: str) -> errors.InvalidRequestError:
    return errors.InvalidRequestError(message, details=[{"field": "body", "message": message}])

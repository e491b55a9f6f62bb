"""The web page: ``GET /ui`` (and ``/`` redirecting to it), served from ``static/`` beside it.

The page is public (it holds nothing: the API calls it makes carry the user's token), so its
routes need no token (``PUBLIC_ROUTES``, read by the auth middleware: by the matched route, not
by a path prefix, so no path can reach an API handler without a token). Its assets are named by
a hash of their contents (``/ui/assets/{version}/{name}``) and cached for a year; the page
itself is never cached, so a new package version is picked up on the next load. Every answer
carries a strict Content-Security-Policy: no inline script or style, nothing from elsewhere.
"""

import functools
import hashlib
import importlib.resources
import re

from aiohttp import web

from dispatcher import errors

_PACKAGE = "dispatcher.api.ui"
_FOLDER = "static"
INDEX = "index.html"
# What the asset route serves: the folder's files but the page, by extension.
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Asset names as the route takes them (no slash, no dot-dot: a flat folder).
ASSET_NAME_PATTERN = r"^[a-z][a-z0-9-]*\.(?:js|css|svg)$"
VERSION_PATTERN = r"^[0-9a-f]{16}$"
_VERSION_MARK = "{{version}}"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
PAGE_PATH = "/ui"
ASSET_ROUTE = "/ui/assets/{version}/{name}"
PUBLIC_ROUTES = frozenset({"/", PAGE_PATH, ASSET_ROUTE})
_IMMUTABLE = "public, max-age=31536000, immutable"

routes = web.RouteTableDef()


@functools.cache
def assets() -> dict[str, bytes]:
    """The asset files by name (read once: they ship with the package)."""
    folder = importlib.resources.files(_PACKAGE).joinpath(_FOLDER)
    found = {
        entry.name: entry.read_bytes()
        for entry in folder.iterdir()
        if entry.is_file() and re.fullmatch(ASSET_NAME_PATTERN, entry.name)
    }
    return dict(sorted(found.items()))


@functools.cache
def version() -> str:
    """A hash of every asset: changes whenever any of them does."""
    digest = hashlib.sha256()
    for name, body in assets().items():
        digest.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
    return digest.hexdigest()[:16]


@functools.cache
def page() -> bytes:
    folder = importlib.resources.files(_PACKAGE).joinpath(_FOLDER)
    text = folder.joinpath(INDEX).read_text(encoding="utf-8")
    return text.replace(_VERSION_MARK, version()).encode()


@routes.get("/")
async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound(PAGE_PATH, headers=SECURITY_HEADERS)


@routes.get(PAGE_PATH)
async def index(request: web.Request) -> web.Response:
    return web.Response(
        body=page(),
        content_type="text/html",
        charset="utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


@routes.get(ASSET_ROUTE)
async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = assets().get(name)
    # Another version's asset is not served under its name: it would be cached for a year.
    if request.match_info["version"] != version() or body is None:
        raise errors.NotFoundError("no such asset")
    content_type = _TYPES["." + name.rpartition(".")[2]]
    return web.Response(
        body=body,
        headers={**SECURITY_HEADERS, "Content-Type": content_type, "Cache-Control": _IMMUTABLE},
    )

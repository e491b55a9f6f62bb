"""``GET /v1/config``: what a submitting client may choose, so that a form can offer it.

Who the caller is (its tenant), the image allow-list (the names a request may give), the default
image, and the limits of ``timeout_seconds`` and ``resources`` as the settings state them.
Read-only; an API token is needed as for any ``/v1`` path.
"""

from aiohttp import web

from dispatcher.api import app_keys
from dispatcher.api.http import middlewares

routes = web.RouteTableDef()


@routes.get("/v1/config")
async def service_config(request: web.Request) -> web.Response:
    settings = request.app[app_keys.SETTINGS]
    limits = settings.limits
    return web.json_response(
        {
            # Who the token is: a tenant's name, or null for an operator (who names a
            # tenant's evaluation TENANT~ID).
            "tenant": middlewares.principal(request).tenant,
            "images": sorted(settings.images),
            "default_image": settings.default_image,
            "limits": {
                "timeout_seconds_default": limits.timeout_seconds_default,
                "timeout_seconds_max": limits.timeout_seconds_max,
                "cpu_default": limits.cpu_default,
                "cpu_max": limits.cpu_max,
                "memory_default": limits.memory_default,
                "memory_max": limits.memory_max,
            },
        }
    )

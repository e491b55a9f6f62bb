"""Typed keys of what ``create_app`` stores on the application (shared by the handlers)."""

import asyncio

import redis.asyncio
from aiohttp import web

from dispatcher import metrics
from dispatcher.api.streams.sse import EventStream
from dispatcher.api.submissions import Submitter
from dispatcher.backends.base import Backend
from dispatcher.settings import DispatcherSettings
from dispatcher.store.store import Store

SETTINGS = web.AppKey("settings", DispatcherSettings)
REDIS: web.AppKey[redis.asyncio.Redis] = web.AppKey("redis")
BACKEND = web.AppKey("backend", Backend)
STORE = web.AppKey("store", Store)
SUBMITTER = web.AppKey("submitter", Submitter)
EVENT_STREAM = web.AppKey("event_stream", EventStream)
REGISTRY = web.AppKey("registry", metrics.Registry)
# Set on SIGTERM while the server goes on serving for shutdown_delay_seconds: not ready.
DRAINING = web.AppKey("draining", asyncio.Event)
# Set when the server shuts down, so open event streams end instead of holding it up.
STOPPING = web.AppKey("stopping", asyncio.Event)

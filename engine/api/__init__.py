"""The HTTP API: customer events and profiles in, OneID (identify), consent per channel, and
API entry into journeys (trigger).

``create_app`` builds the FastAPI application from ports it is given; ``serve_api`` runs it with
uvicorn in the caller's event loop. Errors of this layer::

    ApiConfigError      create_app refuses to start (no API keys and no allow_anonymous)
    ApiServerError      serve_api's server stopped without being asked (failed start-up, crash)

Request errors are HTTP responses (400, 401, 404, 409, 413, 422, 503), described in
``engine.api.app``.
"""

from __future__ import annotations

from engine.api.app import ApiConfigError, create_app
from engine.api.serve import ApiServerError, serve_api

__all__ = ["ApiConfigError", "ApiServerError", "create_app", "serve_api"]

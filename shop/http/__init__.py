"""HTTP: health, readiness, metrics, webhooks and the operator API, served by hypercorn."""

from .app import create_app as create_app
from .serve import serve_http as serve_http

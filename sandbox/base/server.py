"""A Flask app on a background werkzeug thread: the part every sandbox shares, helpdesk or CRM."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from flask import Flask, Response
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

CONTROL = "/__sandbox"

# (rule, HTTP method, view) as the sandboxes register their routes.
Route = tuple[str, str, Callable[..., Response]]

# Where @route and @control keep their (rule, method) marks on a view.
API_ROUTES = "sandbox_api_routes"
CONTROL_ROUTES = "sandbox_control_routes"
_View = TypeVar("_View", bound=Callable[..., Any])


def _mark(kind: str, rule: str, method: str) -> Callable[[_View], _View]:
    def mark(view: _View) -> _View:
        # Stacked decorators apply bottom-up; inserting at the front keeps them in reading order.
        view.__dict__.setdefault(kind, []).insert(0, (rule, method))
        return view

    return mark


def route(rule: str, method: str = "GET") -> Callable[[_View], _View]:
    """Serve the decorated view at `method rule`, under the sandbox's API prefix; stack for more."""
    return _mark(API_ROUTES, rule, method)


def control(rule: str, method: str = "GET") -> Callable[[_View], _View]:
    """Serve the decorated view at `method rule` under /__sandbox/ (no auth, never rate limited)."""
    return _mark(CONTROL_ROUTES, rule, method)


class QuietHandler(WSGIRequestHandler):
    """No per-request access log on stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class KeepAliveQuietHandler(QuietHandler):
    """Keep-alive like a real API server, and no per-request access log on stderr."""

    protocol_version = "HTTP/1.1"


class SandboxServer(ABC):
    """A Flask app served on a background werkzeug thread; subclasses build `app` and name the thread."""

    thread_name: ClassVar[str] = "sandbox"
    request_handler: ClassVar[type[WSGIRequestHandler]] = KeepAliveQuietHandler
    json_content_type: ClassVar[str] = "application/json; charset=utf-8"

    app: Flask
    _lock: threading.RLock

    def _init_server(self) -> None:
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def _before_start(self) -> None:
        """Hook: runs before the server is made (e.g. to reopen pools after stop())."""
        return None  # optional: a sandbox overrides what it needs

    def _begin_stop(self) -> None:
        """Hook: runs before the server shuts down."""
        return None  # optional: a sandbox overrides what it needs

    def _end_stop(self) -> None:
        """Hook: runs after the serving thread has ended."""
        return None  # optional: a sandbox overrides what it needs

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve the API on a background thread; returns the base URL (port 0 picks a free one)."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        self._before_start()
        server = make_server(host, port, self.app, threaded=True, request_handler=self.request_handler)
        self._server = server
        self._base_url = f"http://{host}:{server.server_port}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self._base_url

    def stop(self) -> None:
        """Stop serving."""
        self._begin_stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._end_stop()
        self._server = None
        self._thread = None

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("sandbox not started")
        return self._base_url

    # -- the Flask app -----------------------------------------------------------------------------

    def _new_app(self, name: str) -> Flask:
        """A Flask app with the sandbox's before/after request hooks; routes and error handlers follow."""
        app = Flask(name)
        app.url_map.strict_slashes = False
        app.before_request(self._before_request)
        app.after_request(self._last_touch)  # registered first, so it runs after every other hook
        app.after_request(self._after_request)
        return app

    def _last_touch(self, response: Response) -> Response:
        """Hook: the final say over a response on its way out (a helpdesk sandbox may cut it off)."""
        return response

    @abstractmethod
    def _before_request(self) -> Response | None:
        """Each vendor's auth, faults and rate limit, in its own order."""

    @abstractmethod
    def _after_request(self, response: Response) -> Response:
        """Each vendor's rate-limit headers and request log."""

    def _routes(self, kind: str = API_ROUTES) -> list[Route]:
        """The views marked with @route (or @control): base classes' first, each class in its order."""
        routes: list[Route] = []
        for cls in reversed(type(self).__mro__):
            for name, member in vars(cls).items():
                for rule, method in getattr(member, kind, ()):
                    routes.append((rule, method, getattr(self, name)))
        return routes

    @staticmethod
    def _add_routes(app: Flask, routes: list[Route], prefix: str = "", endpoint_prefix: str = "") -> None:
        for rule, method, view in routes:
            app.add_url_rule(f"{prefix}{rule}", f"{endpoint_prefix}{method} {rule}", view, methods=[method])

    @classmethod
    def _json(cls, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        return Response(
            json.dumps(payload),
            status=status,
            headers=dict(headers or {}),
            content_type=cls.json_content_type,
        )


def serve_until_stopped(sandbox: SandboxServer) -> int:
    """Block until Ctrl-C or SIGTERM, then stop the sandbox; a `main()` helper."""
    print("Ctrl-C to stop.", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


def sandbox_arguments(vendor: str, port: int, people: str) -> argparse.ArgumentParser:
    """The arguments every `python -m sandbox.<vendor>` takes: where to listen and how much to seed."""
    parser = argparse.ArgumentParser(
        prog=f"python -m sandbox.{vendor.lower()}", description=f"Run the {vendor} sandbox on loopback."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--customers", type=int, default=1000, help=f"synthetic {people} to seed (0: none)")
    parser.add_argument("--seed", type=int, default=42, help="random seed for the synthetic data")
    return parser

"""Scaffolding shared by the local API stand-ins (Zendesk, Freshdesk, HubSpot).

Each sandbox is a Flask app served by werkzeug on a daemon thread over loopback. What is the same in all
of them lives here: starting and stopping that server, the quiet request handlers, the JSON response
helper, the sliding-window rate limiter, and -- for the helpdesk sandboxes -- fault injection, response
delay, the request log, webhook delivery bookkeeping and the sandbox-only control routes under
/__sandbox/. Everything vendor-specific (bodies, headers, status codes, auth) stays in the vendor module.
"""

from __future__ import annotations

import json
import math
import signal
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from copy import deepcopy
from typing import Any, ClassVar

import requests
from flask import Flask, Response, request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

CONTROL = "/__sandbox"

# (rule, HTTP method, view) as the sandboxes list their routes.
Route = tuple[str, str, Callable[..., Response]]


class QuietHandler(WSGIRequestHandler):
    """No per-request access log on stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class KeepAliveQuietHandler(QuietHandler):
    """Keep-alive like a real API server, and no per-request access log on stderr."""

    protocol_version = "HTTP/1.1"


class SlidingWindow:
    """Credits spent in the last `window` seconds; per-minute (or per-ten-seconds) limits behave like this.

    A plain request limit is a budget of one credit a request (`admit`).
    """

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._spent: deque[tuple[float, int]] = deque()
        self._total = 0
        self._lock = threading.Lock()

    def _trim(self, now: float) -> None:
        while self._spent and self._spent[0][0] <= now - self.window:
            self._total -= self._spent.popleft()[1]

    def spend(self, credits: int, now: float | None = None) -> tuple[bool, int, int]:
        """Spend `credits` if the budget allows: (admitted, remaining, seconds until credits free up)."""
        if now is None:
            now = time.monotonic()
        with self._lock:
            self._trim(now)
            if self._total + credits > self.limit:
                retry_after = max(1, math.ceil(self._spent[0][0] + self.window - now)) if self._spent else 1
                return False, max(0, self.limit - self._total), retry_after
            self._spent.append((now, credits))
            self._total += credits
            return True, self.limit - self._total, 0

    def admit(self, now: float | None = None) -> tuple[bool, int, int]:
        """Take one slot if one is free: (admitted, remaining, seconds until a slot frees)."""
        return self.spend(1, now)

    def remaining(self, now: float | None = None) -> int:
        with self._lock:
            self._trim(time.monotonic() if now is None else now)
            return max(0, self.limit - self._total)


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


class HelpdeskSandbox(SandboxServer):
    """A SandboxServer with fault injection, response delay, a request log, webhook delivery records
    and the shared sandbox-only control routes (no auth, never rate limited)."""

    api_prefix: ClassVar[str] = "/api/v2"

    def _init_controls(self) -> None:
        """Set up the shared state; call from __init__ once whatever `_open_pools` needs exists."""
        self._faults: dict[str, Any] = {"status": 0, "remaining": 0, "retry_after": None}
        self._delay = 0.0
        self._cuts = 0
        self._request_log: list[tuple[str, str, str, int]] = []
        self._deliveries: list[dict[str, Any]] = []
        self._deliveries_changed = threading.Condition()
        self._stopped = threading.Event()
        self._open_pools()
        self._init_server()

    # -- worker pools, reopened when the sandbox starts again after stop() --------------------------

    @abstractmethod
    def _open_pools(self) -> None:
        """Start the thread pools that deliver webhooks and run jobs."""

    @abstractmethod
    def _close_pools(self) -> None:
        """Stop them; the sandbox may be started again."""

    def _before_start(self) -> None:
        if self._stopped.is_set():  # started again after stop(): fresh pools, same data
            self._stopped.clear()
            self._open_pools()

    def _begin_stop(self) -> None:
        self._stopped.set()

    def _end_stop(self) -> None:
        self._close_pools()

    def stop(self) -> None:
        """Stop serving and abandon pending webhook retries."""
        super().stop()

    # -- test and demo controls --------------------------------------------------------------------

    def _set_faults(self, status: int, count: int, retry_after: int | None, **extra: Any) -> None:
        if status == 429 and retry_after is None:
            retry_after = 1
        with self._lock:
            self._faults = {
                "status": int(status),
                "remaining": max(0, int(count)),
                "retry_after": retry_after,
                **extra,
            }

    def inject_faults(self, status: int, count: int, retry_after: int | None = None) -> None:
        """Answer the next `count` API requests with `status` (a flaky or rate-limiting helpdesk)."""
        self._set_faults(status, count, retry_after)

    def cut_responses(self, count: int) -> None:
        """Cut off the next `count` API responses mid-body: half the body is sent, then the connection
        drops (a proxy or a network failing under load). The request itself has been carried out."""
        with self._lock:
            self._cuts = max(0, int(count))

    def set_delay(self, seconds: float) -> None:
        """Delay every API response (a slow helpdesk)."""
        self._delay = max(0.0, float(seconds))

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        """Every webhook attempt made so far (one entry per attempt, retries included)."""
        with self._deliveries_changed:
            return deepcopy(self._deliveries)

    def wait_for_deliveries(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least `n` attempts were recorded or `timeout` passed; returns them all."""
        deadline = time.monotonic() + timeout
        with self._deliveries_changed:
            while len(self._deliveries) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._deliveries_changed.wait(remaining)
            return deepcopy(self._deliveries)

    @property
    def request_log(self) -> list[tuple[str, str, str, int]]:
        """(method, path, query string, status) of every API request answered."""
        with self._lock:
            return list(self._request_log)

    def clear_request_log(self) -> None:
        with self._lock:
            self._request_log.clear()

    # -- request handling helpers ------------------------------------------------------------------

    @classmethod
    def _is_api(cls) -> bool:
        return request.path.startswith(cls.api_prefix)

    def _fault_matches(self, fault: Mapping[str, Any]) -> bool:
        """Hook: whether a pending fault applies to this request."""
        return True

    @abstractmethod
    def _fault_response(self, status: int, retry_after: int | None) -> Response:
        """An injected failure, shaped the way this vendor answers with that status."""

    def _delay_or_fault(self) -> Response | None:
        """Sleep the configured delay, then answer with an injected fault if one is pending."""
        if self._delay:
            time.sleep(self._delay)
        with self._lock:
            fault = self._faults
            matches = self._fault_matches(fault)
            if fault["remaining"] > 0 and matches:
                fault["remaining"] -= 1
                return self._fault_response(fault["status"], fault["retry_after"])
        return None

    def _last_touch(self, response: Response) -> Response:
        if not self._is_api():
            return response
        with self._lock:
            if self._cuts <= 0:
                return response
            self._cuts -= 1
        body = response.get_data()  # the Content-Length header keeps announcing all of it
        conn: socket.socket | None = request.environ.get("werkzeug.socket")

        def half_then_drop() -> Iterator[bytes]:
            yield body[: len(body) // 2]
            if conn is not None:
                conn.shutdown(socket.SHUT_RDWR)
            raise ConnectionAbortedError("sandbox: response cut off")  # werkzeug drops it quietly

        response.response = half_then_drop()
        return response

    def _log_request(self, path: str, response: Response) -> None:
        query = request.query_string.decode("utf-8", "replace")
        with self._lock:
            self._request_log.append((request.method, path, query, response.status_code))

    # -- webhook deliveries ------------------------------------------------------------------------

    def _append_delivery(self, entry: dict[str, Any]) -> None:
        with self._deliveries_changed:
            self._deliveries.append(entry)
            self._deliveries_changed.notify_all()

    @staticmethod
    def _send_webhook(
        method: str, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> tuple[int | None, str | None, float]:
        """One webhook attempt: (status code or None, error or None, time sent)."""
        status: int | None = None
        error: str | None = None
        sent_at = time.time()
        try:
            with requests.Session() as session:
                response = session.request(
                    method,
                    url,
                    data=body,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                )
                status = response.status_code
                response.close()
        except requests.RequestException as e:
            error = f"{type(e).__name__}: {e}"
        except Exception as e:  # never let a delivery thread die silently
            error = f"{type(e).__name__}: {e}"
        return status, error, sent_at

    # -- sandbox-only control endpoints (no auth, never rate limited) ------------------------------

    def _control_routes(self) -> list[Route]:
        return [
            ("/faults", "POST", self._control_faults),
            ("/delay", "POST", self._control_delay),
            ("/deliveries", "GET", self._control_deliveries),
            ("/requests", "GET", self._control_requests),
            ("/requests", "DELETE", self._control_clear_requests),
        ]

    def _add_control_routes(self, app: Flask, extra: list[Route]) -> None:
        self._add_routes(app, self._control_routes() + extra, CONTROL, "control ")

    @abstractmethod
    def _control_body(self) -> dict[str, Any]:
        """The JSON body of a control request, read the way this sandbox reads its API bodies."""

    @abstractmethod
    def _control_error(self, field: str, message: str) -> Exception:
        """The vendor's 400-style error for a bad control request."""

    def _fault_options(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Hook: extra keyword arguments for inject_faults out of a /faults body."""
        return {}

    def _control_faults(self) -> Response:
        body = self._control_body()
        try:
            status = int(body.get("status", 503))
            count = int(body.get("count", 1))
            retry_after = body.get("retry_after")
            options = self._fault_options(body)
            self.inject_faults(status, count, None if retry_after is None else int(retry_after), **options)
        except (TypeError, ValueError) as e:
            raise self._control_error("status", "status, count and retry_after must be integers") from e
        return self._json({"faults": {"status": status, "count": count, "retry_after": retry_after}})

    def _control_delay(self) -> Response:
        body = self._control_body()
        try:
            self.set_delay(float(body.get("seconds", 0)))
        except (TypeError, ValueError) as e:
            raise self._control_error("seconds", "seconds must be a number") from e
        return self._json({"delay": self._delay})

    def _control_deliveries(self) -> Response:
        return self._json({"deliveries": self.deliveries})

    def _control_requests(self) -> Response:
        keys = ("method", "path", "query_string", "status")
        return self._json({"requests": [dict(zip(keys, entry, strict=True)) for entry in self.request_log]})

    def _control_clear_requests(self) -> Response:
        self.clear_request_log()
        return Response(status=204)


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

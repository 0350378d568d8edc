"""What a helpdesk sandbox adds to the server: faults, delays, cut responses, the request log, change
stamps, webhook delivery with retries, and the sandbox-only control routes (no auth, never rate limited).

The Zendesk and Freshdesk sandboxes fill in the vendor's side through the abstract hooks: auth and rate
limits, how a fault or a 429 looks, what a webhook request carries and when it is retried.
"""

from __future__ import annotations

import socket
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests
from flask import Flask, Response, g, has_request_context, request
from werkzeug.exceptions import HTTPException

from sandbox.base.limits import EndpointLimits, Limit, LimitOption, Verdict, resolve_limits
from sandbox.base.server import API_ROUTES, CONTROL, CONTROL_ROUTES, SandboxServer, control

WEBHOOK_TIMEOUT = 10.0
WEBHOOK_EXTRA_ATTEMPTS = 3
WEBHOOK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class HelpdeskSandbox(SandboxServer):
    """A SandboxServer with fault injection, response delay, a request log, webhook delivery records
    and the shared sandbox-only control routes (no auth, never rate limited)."""

    api_prefix: ClassVar[str] = "/api/v2"
    app_name: ClassVar[str]
    error_type: ClassVar[type[Exception]]  # the vendor's API error, answered by _api_error
    # The fields of a pending delivery that each of its log entries repeats, and whether an entry
    # records the headers sent (Freshdesk's rules carry custom headers and auth worth seeing).
    delivery_keys: ClassVar[tuple[str, ...]] = ()
    record_headers: ClassVar[bool] = False

    webhook_retry_delay: float
    _webhook_pool: Any  # a ThreadPoolExecutor opened by _open_pools

    def _init_controls(self) -> None:
        """Set up the shared state; call from __init__ once whatever `_open_pools` needs exists."""
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # tests move time by replacing it
        self._last_stamp = datetime.fromtimestamp(0, UTC)
        self._faults: dict[str, Any] = {"status": 0, "remaining": 0, "retry_after": None}
        self._delay = 0.0
        self._cuts = 0
        self._request_log: list[tuple[str, str, str, int]] = []
        self._deliveries: list[dict[str, Any]] = []
        self._deliveries_changed = threading.Condition()
        self._stopped = threading.Event()
        self.endpoint_limits = EndpointLimits()
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

    # -- the account's clock -------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def _stamp(self, previous: datetime | None = None) -> datetime:
        """A change time: never earlier than any earlier change, and distinct from `previous`.

        Helpdesk timestamps have whole seconds; two updates of one ticket within a second must still
        differ (Zendesk's safe_update compares them), and incremental cursors and change filters need
        change times that never go backwards.
        """
        stamp = max(self._now(), self._last_stamp)
        if previous is not None and stamp <= previous:
            stamp = previous + timedelta(seconds=1)
        self._last_stamp = stamp
        return stamp

    def _note_time(self, value: datetime) -> None:
        self._last_stamp = max(self._last_stamp, value)

    # -- the Flask app -----------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        """The app: the vendor's error bodies, its API routes (@route) and the control routes (@control)."""
        app = self._new_app(self.app_name)
        app.register_error_handler(self.error_type, self._api_error)
        app.register_error_handler(HTTPException, self._http_error)
        app.register_error_handler(Exception, self._unexpected_error)
        self._add_routes(app, self._routes(API_ROUTES), self.api_prefix)
        self._add_routes(app, self._routes(CONTROL_ROUTES), CONTROL, "control ")
        return app

    @abstractmethod
    def _api_error(self, error: Any) -> Response:
        """The vendor's answer for its own API error (`error_type`)."""

    @abstractmethod
    def _http_error(self, error: HTTPException) -> Response:
        """The vendor's answer for a werkzeug HTTP error: unknown path, method not allowed, ..."""

    @abstractmethod
    def _internal_error_body(self, error: Exception) -> dict[str, Any]:
        """The vendor's 500 body for a sandbox bug."""

    def _unexpected_error(self, error: Exception) -> Response:
        self.app.logger.exception("sandbox bug while answering %s %s", request.method, request.path)
        return self._json(self._internal_error_body(error), 500)

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

    # -- endpoint rate limits (off unless switched on) ----------------------------------------------

    def _endpoint_limit_defaults(self) -> dict[str, Limit]:
        """Hook: the vendor's documented endpoint budgets, by name (what `endpoint_limits=True` means)."""
        return {}

    def set_endpoint_limits(self, option: LimitOption) -> dict[str, Limit]:
        """Switch the endpoint budgets: off (None/False), the documented ones (True), or those with some
        replaced ({name: limit} or {name: (limit, window seconds)}); what was spent is forgotten."""
        limits = resolve_limits(self._endpoint_limit_defaults(), option)
        self.endpoint_limits.configure(limits)
        return limits

    def _endpoint_spends(self) -> list[tuple[str, Any]]:
        """Hook: the (budget, key) pairs this API request counts against, in the order they are checked."""
        return []

    def _endpoint_limited(self) -> Response | None:
        """Count the request against its endpoint budgets; the vendor's 429 if one is spent."""
        if not self.endpoint_limits.enabled:
            return None
        verdicts, refusal = self.endpoint_limits.check(self._endpoint_spends())
        g.endpoint_verdicts = verdicts
        if refusal is None:
            return None
        return self._rate_limited(refusal.retry_after)

    def _endpoint_limit_headers(self, response: Response) -> None:
        """Add the vendor's headers for the endpoint budgets this request was counted against."""
        for name, value in self._verdict_headers(g.get("endpoint_verdicts", [])).items():
            response.headers[name] = value

    def _verdict_headers(self, verdicts: list[Verdict]) -> dict[str, str]:
        """Hook: the vendor's rate-limit headers for these endpoint verdicts."""
        return {}

    @control("/endpoint_limits", "GET")
    def _control_endpoint_limits(self) -> Response:
        limits = self.endpoint_limits.limits
        return self._json({"endpoint_limits": {n: vars(limit) for n, limit in limits.items()}})

    @control("/endpoint_limits", "POST")
    def _control_set_endpoint_limits(self) -> Response:
        """POST {"enabled": true|false} and/or {"limits": {name: limit | [limit, window seconds]}}."""
        body = self._control_body()
        option: LimitOption = body.get("limits") or bool(body.get("enabled", True))
        if body.get("enabled") is False:
            option = None
        try:
            if isinstance(option, dict):
                option = {str(k): tuple(v) if isinstance(v, list) else int(v) for k, v in option.items()}
            limits = self.set_endpoint_limits(option)
        except (TypeError, ValueError, IndexError) as e:
            raise self._control_error("limits", str(e)) from e
        return self._json({"endpoint_limits": {n: vars(limit) for n, limit in limits.items()}})

    # -- request handling helpers ------------------------------------------------------------------

    @classmethod
    def _is_api(cls) -> bool:
        return request.path.startswith(cls.api_prefix)

    def _host(self) -> str:
        if has_request_context():
            return request.host_url.rstrip("/")
        return self._base_url or "http://127.0.0.1"

    def _before_request(self) -> Response | None:
        request.get_data(cache=True)  # always drain the body: keep-alive connections stay in sync
        if not self._is_api():
            return None  # control endpoints and unknown paths: no auth, no limits, no faults
        fault = self._delay_or_fault()
        if fault is not None:
            return fault
        return self._admit()

    @abstractmethod
    def _admit(self) -> Response | None:
        """Each vendor's rate limits and auth, in its own order: a Response refuses the API request."""

    def _fault_matches(self, fault: Mapping[str, Any]) -> bool:
        """Hook: whether a pending fault applies to this request."""
        return True

    @abstractmethod
    def _rate_limited(self, retry_after: int) -> Response:
        """A 429 as this vendor answers it, with Retry-After."""

    @abstractmethod
    def _fault_body(self, status: int) -> dict[str, Any]:
        """The JSON body of an injected failure, shaped the way this vendor answers with that status."""

    def _fault_response(self, status: int, retry_after: int | None) -> Response:
        """An injected failure: a vendor-shaped 429, or the vendor's error body with any Retry-After."""
        if status == 429:
            return self._rate_limited(retry_after or 1)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return self._json(self._fault_body(status), status, headers)

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

    def _dispatch(self, deliveries: list[dict[str, Any]]) -> None:
        for delivery in deliveries:
            try:
                self._webhook_pool.submit(self._deliver, delivery)
            except RuntimeError:  # the sandbox is stopping: record that nothing was sent
                self._record_delivery(delivery, 1, None, "sandbox stopped", {})

    def _record_delivery(
        self,
        delivery: Mapping[str, Any],
        attempt: int,
        status: int | None,
        error: str | None,
        headers: Mapping[str, str],
        sent_at: float | None = None,
    ) -> None:
        entry = {key: delivery[key] for key in self.delivery_keys}
        entry.update(
            status_code=status,
            sent_at=sent_at if sent_at is not None else time.time(),
            attempt=attempt,
            error=error,
            body=delivery["body"],
        )
        if self.record_headers:
            entry["headers"] = dict(headers)
        self._append_delivery(entry)

    def _append_delivery(self, entry: dict[str, Any]) -> None:
        with self._deliveries_changed:
            self._deliveries.append(entry)
            self._deliveries_changed.notify_all()

    @abstractmethod
    def _delivery_target(self, delivery: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Under the lock: the configuration the delivery goes out by (a webhook, a rule); None if gone."""

    @abstractmethod
    def _webhook_request(
        self, target: Mapping[str, Any], delivery: Mapping[str, Any], body: bytes
    ) -> tuple[str, str, dict[str, str]]:
        """(method, URL, headers) of one attempt; signatures are made afresh for each."""

    @abstractmethod
    def _retry_delivery(self, status: int | None, error: str | None) -> bool:
        """Whether the vendor tries again after this answer (or connection error)."""

    def _deliver(self, delivery: Mapping[str, Any]) -> None:
        """Send one delivery as the vendor does: its target's method, URL and headers, a 10 s timeout,
        retried on the answers the vendor retries (at most WEBHOOK_EXTRA_ATTEMPTS more times)."""
        body = delivery["body"].encode("utf-8")
        for attempt in range(1, WEBHOOK_EXTRA_ATTEMPTS + 2):
            with self._lock:
                target = deepcopy(self._delivery_target(delivery))
            if target is None or self._stopped.is_set():
                return
            method, url, headers = self._webhook_request(target, delivery, body)
            status, error, sent_at = self._send_webhook(method, url, body, headers, WEBHOOK_TIMEOUT)
            self._record_delivery(delivery, attempt, status, error, headers, sent_at)
            if not self._retry_delivery(status, error) or attempt > WEBHOOK_EXTRA_ATTEMPTS:
                return
            if self._stopped.wait(self.webhook_retry_delay):
                return

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

    @abstractmethod
    def _control_body(self) -> dict[str, Any]:
        """The JSON body of a control request, read the way this sandbox reads its API bodies."""

    @abstractmethod
    def _control_error(self, field: str, message: str) -> Exception:
        """The vendor's 400-style error for a bad control request."""

    def _fault_options(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Hook: extra keyword arguments for inject_faults out of a /faults body."""
        return {}

    @control("/faults", "POST")
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

    @control("/delay", "POST")
    def _control_delay(self) -> Response:
        body = self._control_body()
        try:
            self.set_delay(float(body.get("seconds", 0)))
        except (TypeError, ValueError) as e:
            raise self._control_error("seconds", "seconds must be a number") from e
        return self._json({"delay": self._delay})

    @control("/deliveries", "GET")
    def _control_deliveries(self) -> Response:
        return self._json({"deliveries": self.deliveries})

    @control("/requests", "GET")
    def _control_requests(self) -> Response:
        keys = ("method", "path", "query_string", "status")
        return self._json({"requests": [dict(zip(keys, entry, strict=True)) for entry in self.request_log]})

    @control("/requests", "DELETE")
    def _control_clear_requests(self) -> Response:
        self.clear_request_log()
        return Response(status=204)

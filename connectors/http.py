"""The HTTP base every connector stands on: one session, one choke point, one retry policy.

Transport failures become domain errors here, classified once: retriable (429, 5xx, timeouts, resets, a
response cut off mid-body) or fatal (every other 4xx). tenacity does the retrying, waiting what the
server's Retry-After asks when it says, otherwise exponential backoff with jitter, for a bounded number
of attempts.

A caller that holds something while it waits (the worker holds an event's lease) bounds all the
waiting of its calls with `wait_limit(seconds)`: a backoff, a Retry-After or a wait for the rate budget
that would end past that bound is not slept; the call raises at once instead (a 429's ApiRateLimited
carries the wait asked for), so the caller can come back at that time without holding anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

log = logging.getLogger("tierdesk.http")

DEFAULT_TIMEOUT = (3.05, 10.0)  # connect, read (seconds)
MAX_RETRY_AFTER = 60.0  # never sleep longer than this on one Retry-After inside a request

# The monotonic time by which this thread's calls must be done waiting (None: no bound). A context
# variable, so the bound a worker thread sets never reaches another thread using the same client.
_WAIT_DEADLINE: ContextVar[float | None] = ContextVar("tierdesk_http_wait_deadline", default=None)


@contextmanager
def wait_limit(seconds: float) -> Iterator[None]:
    """Within the block, no wait of this thread's calls may end more than `seconds` from now."""
    deadline = time.monotonic() + seconds
    outer = _WAIT_DEADLINE.get()
    token = _WAIT_DEADLINE.set(deadline if outer is None else min(outer, deadline))
    try:
        yield
    finally:
        _WAIT_DEADLINE.reset(token)


def _fits(seconds: float) -> bool:
    deadline = _WAIT_DEADLINE.get()
    return deadline is None or time.monotonic() + seconds <= deadline


class _stop_past_wait_limit(stop_base):
    """Stop retrying when the coming sleep would end past the thread's wait limit (tenacity works out
    the sleep before asking whether to stop)."""

    def __call__(self, retry_state: RetryCallState) -> bool:
        return not _fits(retry_state.upcoming_sleep)


class ApiError(Exception):
    """A call to an outside API failed; `retriable` says whether trying again can help."""

    retriable = False

    def __init__(self, connector: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{connector}: {message}")
        self.connector = connector
        self.status = status


class ApiUnauthorized(ApiError):
    """401: the credentials are wrong or revoked."""


class ApiForbidden(ApiError):
    """403: the credentials work but lack a permission."""


class ApiNotFound(ApiError):
    """404: the record (or the endpoint) does not exist."""


class ApiConflict(ApiError):
    """409: the record changed under us (Zendesk safe_update); worth trying again later."""

    retriable = True


class ApiInvalid(ApiError):
    """400/422: the request itself was refused; sending it again will not help."""


class ApiRateLimited(ApiError):
    """429 from the API, or our own outbound rate budget spent (status None: nothing was sent)."""

    retriable = True

    def __init__(
        self, connector: str, message: str, retry_after: float | None, status: int | None = 429
    ) -> None:
        super().__init__(connector, message, status)
        self.retry_after = retry_after


class ApiServerError(ApiError):
    retriable = True


class ApiUnavailable(ApiError):
    """The server could not be reached or did not answer in time."""

    retriable = True


_BY_STATUS: dict[int, type[ApiError]] = {
    400: ApiInvalid,
    401: ApiUnauthorized,
    403: ApiForbidden,
    404: ApiNotFound,
    409: ApiConflict,
    422: ApiInvalid,
}


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, dict):
        parts = [str(body.get(k)) for k in ("error", "description", "message") if body.get(k)]
        details = body.get("details")
        if details:
            parts.append(str(details)[:300])
        if parts:
            return ": ".join(parts)
    return str(body)[:200]


def classify(connector: str, response: requests.Response) -> ApiError | None:
    """Turn a non-2xx response into the matching ApiError (None for success)."""
    status = response.status_code
    if status < 400:
        return None
    text = _error_text(response)
    message = f"{response.request.method} {response.request.path_url} -> {status} {text}"
    if status == 429:
        return ApiRateLimited(connector, message, _retry_after(response.headers.get("Retry-After")))
    if status >= 500:
        return ApiServerError(connector, message, status)
    return _BY_STATUS.get(status, ApiInvalid)(connector, message, status)


class _wait_retry_after_or_backoff:
    """Wait what the server asked for on a 429, otherwise back off exponentially with jitter."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.backoff = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, ApiRateLimited) and error.retry_after is not None:
            return min(error.retry_after, MAX_RETRY_AFTER)
        return self.backoff(state)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning(
        "http.retry",
        extra={"attempt": state.attempt_number, "error": str(error), "sleep": state.upcoming_sleep},
    )


class HttpClient:
    """A connector's door to one API: base URL, auth, timeouts, error translation and retries."""

    def __init__(
        self,
        connector: str,
        base_url: str,
        *,
        auth: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        max_attempts: int = 4,
        backoff_initial: float = 0.5,
        backoff_max: float = 20.0,
        session: requests.Session | None = None,
        rate_limit_wait: Callable[[requests.Response], float | None] | None = None,
    ) -> None:
        self.connector = connector
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        if auth:
            self.session.auth = auth
        self.session.headers.update({"Accept": "application/json", "User-Agent": "tierdesk/0.1"})
        if headers:
            self.session.headers.update(headers)
        self.max_attempts = max_attempts
        self._wait = _wait_retry_after_or_backoff(backoff_initial, backoff_max)
        # How long to wait on a 429 that carries no Retry-After (HubSpot sends rate-limit headers instead);
        # None keeps exponential backoff for such a 429.
        self.rate_limit_wait = rate_limit_wait
        self.calls = 0  # every HTTP request sent, retries included
        self.rate_limited = 0
        # Set by the service: `throttle()` returns seconds to wait before the next request may go out
        # (the outbound rate budget, shared by all processes); `observer(connector, status)` counts calls.
        self.throttle: Callable[[], float] | None = None
        self.observer: Callable[[str, int | None], None] | None = None

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        attempts: int | None = None,
    ) -> Any:
        """Send one logical request, retrying what is retriable; returns the decoded JSON body."""
        retrying = Retrying(
            retry=retry_if_exception_type((ApiRateLimited, ApiServerError, ApiUnavailable)),
            wait=self._wait,
            stop=stop_after_attempt(attempts or self.max_attempts) | _stop_past_wait_limit(),
            before_sleep=_log_retry,
            reraise=True,
        )
        return retrying(self._send, method, path, params, json)

    def _wait_for_budget(self) -> None:
        if self.throttle is None:
            return
        while (wait := self.throttle()) > 0:
            if not _fits(wait):
                raise ApiRateLimited(
                    self.connector, f"outbound rate budget spent; next request in {wait:.1f} s", wait, None
                )
            log.info("http.throttled", extra={"connector": self.connector, "sleep": round(wait, 3)})
            time.sleep(min(wait, 1.0))

    def _send(self, method: str, path: str, params: Any, body: Any) -> Any:
        self._wait_for_budget()
        self.calls += 1
        started = time.perf_counter()
        try:
            response = self.session.request(
                method, self.url(path), params=params, json=body, timeout=self.timeout
            )
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,  # the answer was cut off mid-body
        ) as e:
            if self.observer:
                self.observer(self.connector, None)
            raise ApiUnavailable(self.connector, f"{method} {path}: {e.__class__.__name__}") from e
        if self.observer:
            self.observer(self.connector, response.status_code)
        log.debug(
            "http.call",
            extra={
                "connector": self.connector,
                "method": method,
                "path": path,
                "status": response.status_code,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        error = classify(self.connector, response)
        if error is not None:
            if isinstance(error, ApiRateLimited):
                self.rate_limited += 1
                if error.retry_after is None and self.rate_limit_wait is not None:
                    error.retry_after = self.rate_limit_wait(response)
            raise error
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as e:
            raise ApiServerError(
                self.connector, f"{method} {path}: response is not JSON", response.status_code
            ) from e

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

"""What every HubSpot API area shares: the Flask app, bearer auth, the rolling rate limit and its headers,
error bodies, the request log and request parsing."""

from __future__ import annotations

import hmac
import json
import time
import uuid
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from sandbox.hubspot.common import OBJECT_TYPES, HubSpotError, invalid
from sandbox.hubspot.state import HubSpotState


class HubSpotHttp(HubSpotState):
    """The app and the request helpers shared by the API areas (routes/*.py, their views marked @route)."""

    # -- the Flask app -----------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = self._new_app("hubspot_sandbox")
        app.register_error_handler(HubSpotError, self._hubspot_error)
        app.register_error_handler(HTTPException, self._http_error)
        self._add_routes(app, self._routes())
        return app

    def _rate_headers(self, now: float) -> dict[str, str]:
        headers = {
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self._daily_used)),
        }
        if self._rate is not None:
            headers.update(
                {
                    "X-HubSpot-RateLimit-Max": str(self._rate.limit),
                    "X-HubSpot-RateLimit-Remaining": str(self._rate.remaining(now)),
                    "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.window_ms),
                }
            )
        return headers

    def _rate_limited(self, now: float) -> Response:
        response = self._json(
            {
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()),
                "policyName": "TEN_SECONDLY_ROLLING",
            },
            429,
        )
        response.headers.update(self._rate_headers(now))
        if self._rate is None:  # an injected 429 still says which window to wait for
            response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(self.window_ms)
            response.headers["X-HubSpot-RateLimit-Remaining"] = "0"
        return response

    def _before_request(self) -> Response | None:
        request.get_data(cache=True)
        now = time.monotonic()
        with self._lock:
            if self._faults["remaining"] > 0:
                self._faults["remaining"] -= 1
                status = self._faults["status"]
                if status == 429:
                    return self._rate_limited(now)
                return self._json(
                    {
                        "status": "error",
                        "message": "Injected fault",
                        "category": "INTERNAL_ERROR",
                        "correlationId": str(uuid.uuid4()),
                    },
                    status,
                )
            if self._rate is not None and not self._rate.admit(now)[0]:
                return self._rate_limited(now)
            self._daily_used += 1
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), self.token.encode()):
            return self._json(
                {
                    "status": "error",
                    "message": "Authentication credentials not found. This API supports OAuth 2.0 "
                    "authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                    "correlationId": str(uuid.uuid4()),
                    "category": "INVALID_AUTHENTICATION",
                },
                401,
            )
        return None

    def _after_request(self, response: Response) -> Response:
        if response.status_code != 429:
            response.headers.update(self._rate_headers(time.monotonic()))
        try:
            body = json.loads(request.get_data(cache=True) or b"null")
        except ValueError:
            body = None
        with self._lock:
            self._log.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "query": request.query_string.decode("utf-8", "replace"),
                    "body": body,
                    "status": response.status_code,
                }
            )
        return response

    def _hubspot_error(self, error: HubSpotError) -> Response:
        return self._json(error.body, error.status)

    def _http_error(self, error: HTTPException) -> Response:
        status = error.code or 500
        category = "OBJECT_NOT_FOUND" if status == 404 else "VALIDATION_ERROR"
        return self._json(
            {"status": "error", "message": error.description or error.name, "category": category,
             "correlationId": str(uuid.uuid4())},
            status,
        )  # fmt: skip

    # -- request helpers -----------------------------------------------------------------------------

    @staticmethod
    def _body() -> dict[str, Any]:
        try:
            data = json.loads(request.get_data(cache=True) or b"{}")
        except ValueError as e:
            raise invalid("Invalid input JSON on line 1: the body is not JSON") from e
        if not isinstance(data, dict):
            raise invalid("Invalid input JSON: expected an object")
        return data

    @staticmethod
    def _type(object_type: str) -> str:
        if object_type not in OBJECT_TYPES:
            raise HubSpotError(400, f"Unable to infer object type from: {object_type}", "VALIDATION_ERROR")
        return object_type

    @staticmethod
    def _limit(raw: Any, default: int, maximum: int) -> int:
        try:
            limit = int(raw) if raw not in (None, "") else default
        except (TypeError, ValueError) as e:
            raise invalid(f"limit must be an integer, got {raw!r}") from e
        if limit < 1 or limit > maximum:
            raise invalid(f"limit must be between 1 and {maximum}, got {limit}")
        return limit

    @staticmethod
    def _after(raw: Any) -> int:
        if raw in (None, ""):
            return 0
        try:
            after = int(str(raw))
        except ValueError as e:
            raise invalid(f"after must be a paging cursor returned by the API, got {raw!r}") from e
        if after < 0:
            raise invalid("after must not be negative")
        return after

    def _wanted(self, object_type: str, raw: Any) -> list[str] | None:
        if raw in (None, "", []):
            return None
        names = raw.split(",") if isinstance(raw, str) else list(raw)
        return [n.strip() for n in names if n.strip()]

"""What every Freshdesk API area shares: the Flask app, API-key auth, rate-limit credits, error bodies,
request parsing and page/per_page lists with a Link header."""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from sandbox.base.limits import Limit, Verdict
from sandbox.freshdesk.common import (
    API,
    PER_PAGE_DEFAULT,
    PER_PAGE_MAX,
    PLAN_TICKET_UPDATE_LIMITS,
    Errors,
    FreshdeskError,
    parse_time,
    validation_error,
)
from sandbox.freshdesk.tickets import FreshdeskTickets


class FreshdeskHttp(FreshdeskTickets):
    """The app and the request helpers shared by the API areas (routes/*.py, their views marked @route)."""

    app_name = "freshdesk_sandbox"
    error_type = FreshdeskError

    @staticmethod
    def _credits() -> int:
        """One credit a call, one more for each embedded resource (Freshdesk's `include`)."""
        include = request.args.get("include", "")
        return 1 + len([part for part in include.split(",") if part.strip()])

    def _admit(self) -> Response | None:
        admitted, _remaining, retry_after = self._rate.spend(self._credits())
        if not admitted:
            return self._rate_limited(retry_after)
        if not self._authenticated():
            return self._json(
                {
                    "code": "invalid_credentials",
                    "message": "You have to be logged in to perform this action.",
                },
                401,
            )
        if request.method in ("POST", "PUT") and request.get_data(cache=True).strip():
            mimetype = request.mimetype or ""
            if mimetype != "application/json":
                shown = request.content_type or "not set"
                return self._json(
                    {
                        "code": "invalid_content_type",
                        "message": f"Content-Type header is set to {shown}. "
                        "It should be set to application/json",
                    },
                    415,
                )
        return self._endpoint_limited()

    # -- the ticket-update cap (off unless endpoint_limits= or POST /__sandbox/endpoint_limits) ------

    def _endpoint_limit_defaults(self) -> dict[str, Limit]:
        return {"update_ticket": Limit(PLAN_TICKET_UPDATE_LIMITS[self.plan])}

    def _endpoint_spends(self) -> list[tuple[str, Any]]:
        rule = request.url_rule.rule if request.url_rule is not None else ""
        if request.method == "PUT" and rule == f"{API}/tickets/<int:ticket_id>":
            return [("update_ticket", None)]
        return []

    def _verdict_headers(self, verdicts: list[Verdict]) -> dict[str, str]:
        """X-RateLimit-Total/-Remaining of the binding budget: the ticket-update cap when it has fewer
        left than the account (always on its 429). Freshdesk documents no header of its own for the
        per-endpoint caps (choice); its documented headers keep telling a client how long to hold off."""
        headers: dict[str, str] = {}
        account_left = self._rate.remaining()
        for verdict in verdicts:
            if not verdict.admitted or verdict.remaining < account_left:
                headers["X-RateLimit-Total"] = str(verdict.limit)
                headers["X-RateLimit-Remaining"] = str(verdict.remaining)
        return headers

    def _fault_matches(self, fault: Mapping[str, Any]) -> bool:
        return (fault.get("method") in (None, request.method)) and (
            not fault.get("path") or request.path.startswith(fault["path"])
        )

    def _authenticated(self) -> bool:
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return False
        return hmac.compare_digest((auth.username or "").encode(), self.api_key.encode())

    @staticmethod
    def _rate_limited(retry_after: int) -> Response:
        return Response(
            json.dumps({"code": "rate_limit_exceeded", "message": "You have exceeded the limit of requests"}),
            status=429,
            headers={"Retry-After": str(retry_after)},
            content_type="application/json; charset=utf-8",
        )

    def _fault_body(self, status: int) -> dict[str, Any]:
        return {"code": "internal_error", "message": "Injected fault"}

    def _after_request(self, response: Response) -> Response:
        if not self._is_api():
            return response
        response.headers["X-RateLimit-Total"] = str(self._rate.limit)
        response.headers["X-RateLimit-Remaining"] = str(self._rate.remaining())
        response.headers["X-RateLimit-Used-CurrentRequest"] = str(self._credits())
        self._endpoint_limit_headers(response)
        self._log_request(request.path, response)
        hold = 0.0
        with self._lock:
            lost = self._lost
            if lost["remaining"] > 0 and response.status_code < 400 and self._fault_matches(lost):
                lost["remaining"] -= 1
                hold = lost["hold"]
        if hold:
            time.sleep(hold)  # the work is done; the answer arrives after the client gave up
        return response

    def _api_error(self, error: FreshdeskError) -> Response:
        if error.body is None:
            return Response(b"", error.status, error.headers)
        return self._json(error.body, error.status, error.headers)

    def _http_error(self, error: HTTPException) -> Response:
        status = error.code or 500
        if status == 404:
            return Response(b"", 404)
        if isinstance(error, MethodNotAllowed):
            allowed = ", ".join(m for m in (error.valid_methods or []) if m not in ("HEAD", "OPTIONS"))
            return self._json(
                {
                    "code": "method_not_allowed",
                    "message": f"{request.method} method is not allowed. "
                    f"It should be one of these method(s): {allowed}",
                },
                405,
                {"Allow": allowed},
            )
        return self._json(
            {"code": error.name.lower().replace(" ", "_"), "message": error.description}, status
        )

    def _internal_error_body(self, error: Exception) -> dict[str, Any]:
        return {"code": "internal_error", "message": str(error)}

    # -- request helpers ---------------------------------------------------------------------------

    @staticmethod
    def _body(allowed: frozenset[str]) -> dict[str, Any]:
        raw = request.get_data(cache=True)
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise FreshdeskError(
                400,
                {
                    "description": "Validation failed",
                    "errors": [{"code": "invalid_json", "message": "Request body has invalid json format"}],
                },
            ) from e
        if not isinstance(data, dict):
            raise FreshdeskError(
                400,
                {
                    "description": "Validation failed",
                    "errors": [{"code": "invalid_json", "message": "Request body must be a JSON object"}],
                },
            )
        errors = Errors()
        for key in data:
            if key not in allowed:
                errors.add(key, "Unexpected/invalid field in request", "invalid_field")
        errors.raise_if_any()
        return data

    def _page_args(self, page_max: int | None = None) -> tuple[int, int]:
        errors = Errors()
        values = {}
        for name, default in (("page", 1), ("per_page", PER_PAGE_DEFAULT)):
            raw = request.args.get(name)
            if raw in (None, ""):
                values[name] = default
                continue
            try:
                values[name] = int(raw)
            except ValueError:
                values[name] = default
                errors.add(name, "It should be a Positive Number", "datatype_mismatch")
                continue
            if values[name] < 1:
                errors.add(name, "It should be a Positive Number")
        if values["per_page"] > PER_PAGE_MAX:
            errors.add("per_page", f"It should be a Positive Number less than or equal to {PER_PAGE_MAX}")
        if page_max is not None and values["page"] > page_max:
            errors.add("page", f"It should be a Positive Number less than or equal to {page_max}")
        errors.raise_if_any()
        return values["page"], values["per_page"]

    def _paginate(
        self,
        records: list[dict[str, Any]],
        render: Callable[[dict[str, Any]], dict[str, Any]],
        page_max: int | None = None,
    ) -> Response:
        """One page of `records` and, while more exist, a Link header to the next page."""
        page, per_page = self._page_args(page_max)
        start = (page - 1) * per_page
        chunk = records[start : start + per_page]
        headers = {}
        if start + per_page < len(records) and (page_max is None or page < page_max):
            query = [(k, v) for k, v in request.args.items(multi=True) if k != "page"]
            query.append(("page", str(page + 1)))
            headers["Link"] = f'<{self._host()}{request.path}?{urlencode(query)}>; rel="next"'
        return self._json([render(r) for r in chunk], 200, headers)

    @staticmethod
    def _since(name: str) -> datetime | None:
        raw = request.args.get(name)
        if raw in (None, ""):
            return None
        try:
            return parse_time(raw)
        except ValueError as e:
            raise validation_error(name, "It should be in the 'valid date time' format") from e

    @staticmethod
    def _int_filter(name: str) -> int | None:
        raw = request.args.get(name)
        if raw in (None, ""):
            return None
        if not raw.isdigit():
            raise validation_error(name, "It should be a Positive Number", "datatype_mismatch")
        return int(raw)

    @staticmethod
    def _includes(allowed: tuple[str, ...]) -> list[str]:
        raw = request.args.get("include", "")
        names = [part.strip() for part in raw.split(",") if part.strip()]
        bad = [n for n in names if n not in allowed]
        if bad:
            raise validation_error("include", f"It should be one of these values: '{','.join(allowed)}'")
        return names

"""What every Zendesk API area shares: the Flask app, auth, rate limits, error bodies, request parsing
and list pagination (cursor by default, offset with ?page=N)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from sandbox.base import CONTROL
from sandbox.base.limits import Limit, Verdict
from sandbox.zendesk.common import (
    API,
    BULK_LIMIT,
    ENDPOINT_LIMITS,
    PAGE_SIZE_MAX,
    ZendeskError,
    as_int,
    bad_request,
    decode_cursor,
    encode_cursor,
)
from sandbox.zendesk.tickets import ZendeskTickets


class _StripJsonSuffix:
    """Zendesk accepts every path with or without ".json"; route both to the same view."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        environ["sandbox.original_path"] = path
        if path.startswith(API) and path.endswith(".json"):
            environ["PATH_INFO"] = path[: -len(".json")]
        return self.app(environ, start_response)


class ZendeskHttp(ZendeskTickets):
    """The app and the request helpers shared by the API areas (routes/*.py, their views marked @route)."""

    app_name = "zendesk_sandbox"
    error_type = ZendeskError

    # -- the Flask app -----------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = super()._build_app()
        app.wsgi_app = _StripJsonSuffix(app.wsgi_app)  # type: ignore[method-assign]
        return app

    def _admit(self) -> Response | None:
        if self._rate is not None:
            admitted, _remaining, retry_after = self._rate.admit()
            if not admitted:
                return self._rate_limited(retry_after)
        if self._incremental_rate is not None and request.path.startswith(f"{API}/incremental/"):
            admitted, _remaining, retry_after = self._incremental_rate.admit()
            if not admitted:
                return self._rate_limited(retry_after)
        if not self._authenticated():
            return self._json({"error": "Couldn't authenticate you"}, 401)
        return self._endpoint_limited()

    # -- endpoint rate limits (off unless endpoint_limits= or POST /__sandbox/endpoint_limits) -------

    def _endpoint_limit_defaults(self) -> dict[str, Limit]:
        return {name: budgets[1 if self.high_volume else 0] for name, budgets in ENDPOINT_LIMITS.items()}

    def _endpoint_spends(self) -> list[tuple[str, Any]]:
        """Update Ticket counts once a request, a single update or an update_many alike (choice: Zendesk
        documents the limit per request); the 30-per-10-minutes budget is per user and ticket, and only a
        single update names one ticket."""
        rule = request.url_rule.rule if request.url_rule is not None else ""
        if request.method == "PUT" and rule == f"{API}/tickets/<int:ticket_id>":
            user = request.authorization.username if request.authorization else None
            ticket = (request.view_args or {}).get("ticket_id")
            return [("update_ticket", None), ("update_ticket_per_user", (user, ticket))]
        if request.method == "PUT" and rule == f"{API}/tickets/update_many":
            return [("update_ticket", None)]
        if request.method == "PUT" and rule == f"{API}/organizations/<int:organization_id>":
            return [("update_organization", None)]
        if request.path.startswith(f"{API}/incremental/"):
            return [("incremental_exports", None)]
        return []

    def _verdict_headers(self, verdicts: list[Verdict]) -> dict[str, str]:
        """One ``zendesk-ratelimit-<budget>: total=N; remaining=N; resets=S`` header per endpoint budget.

        Why this shape: it is the form Zendesk documents for an endpoint's own budget
        (``zendesk-ratelimit-tickets-index`` on List Tickets); the names for these budgets are ours
        (update-ticket, update-ticket-per-user, incremental-exports, update-organization), as Zendesk
        names none. ``X-Rate-Limit``/``X-Rate-Limit-Remaining`` keep describing the account-wide budget,
        as documented (as would ``ratelimit-*``, which the sandbox does not send), so a client reading
        them is not misled; the 429 of an endpoint budget carries Retry-After (seconds), the one header
        Zendesk promises on every 429 and the one tierdesk's connector waits on.
        """
        return {
            f"zendesk-ratelimit-{v.name.replace('_', '-')}": (
                f"total={v.limit}; remaining={v.remaining}; resets={v.reset}"
            )
            for v in verdicts
        }

    def _authenticated(self) -> bool:
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return False
        user_ok = hmac.compare_digest((auth.username or "").encode(), f"{self.email}/token".encode())
        token_ok = hmac.compare_digest((auth.password or "").encode(), self.token.encode())
        return user_ok and token_ok

    @staticmethod
    def _rate_limited(retry_after: int) -> Response:
        return Response(
            "Rate limit exceeded",
            status=429,
            headers={"Retry-After": str(retry_after)},
            content_type="text/plain; charset=utf-8",
        )

    def _fault_body(self, status: int) -> dict[str, Any]:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return {"error": phrase.replace(" ", ""), "description": "Injected fault"}

    def _after_request(self, response: Response) -> Response:
        path = request.environ.get("sandbox.original_path", request.path)
        if path.startswith(CONTROL):
            return response
        if self._rate is not None and self._is_api():
            response.headers["X-Rate-Limit"] = str(self._rate.limit)
            response.headers["X-Rate-Limit-Remaining"] = str(self._rate.remaining())
        if self._is_api():
            self._endpoint_limit_headers(response)
        self._log_request(path, response)
        return response

    def _api_error(self, error: ZendeskError) -> Response:
        if isinstance(error.body, str):
            return Response(error.body, error.status, error.headers, content_type="text/plain")
        return self._json(error.body, error.status, error.headers)

    def _http_error(self, error: HTTPException) -> Response:
        status = error.code or 500
        if status == 404:
            return self._json({"error": "InvalidEndpoint", "description": "Not found"}, 404)
        if isinstance(error, MethodNotAllowed):
            allow = {"Allow": ", ".join(error.valid_methods or [])}
            return self._json({"error": "MethodNotAllowed", "description": "Method not allowed"}, 405, allow)
        return self._json({"error": error.name.replace(" ", ""), "description": error.description}, status)

    def _internal_error_body(self, error: Exception) -> dict[str, Any]:
        return {"error": "InternalServerError", "description": str(error)}

    # -- request helpers ---------------------------------------------------------------------------

    @staticmethod
    def _body() -> dict[str, Any]:
        raw = request.get_data(cache=True)
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise bad_request("InvalidJSON", "The request body is not valid JSON") from e
        if not isinstance(data, dict):
            raise bad_request("InvalidJSON", "The request body must be a JSON object")
        return data

    @staticmethod
    def _wrapped(body: Mapping[str, Any], key: str) -> dict[str, Any]:
        value = body.get(key)
        if not isinstance(value, dict):
            raise bad_request("ParameterMissing", f"param is missing or the value is empty: {key}")
        return value

    @staticmethod
    def _int_arg(name: str, default: int, maximum: int) -> int:
        raw = request.args.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as e:
            raise bad_request("InvalidPaginationParameter", f"{name} must be an integer") from e
        if value < 1:
            raise bad_request("InvalidPaginationParameter", f"{name} must be at least 1")
        if value > maximum:
            raise bad_request("InvalidPaginationParameter", f"{name} is more than the maximum {maximum}")
        return value

    @staticmethod
    def _id_list(name: str, *, required: bool = False) -> list[str]:
        raw = request.args.get(name, "")
        ids = [part.strip() for part in raw.split(",") if part.strip()]
        if required and not ids:
            raise bad_request("ParameterMissing", f"param is missing or the value is empty: {name}")
        if len(ids) > BULK_LIMIT:
            raise bad_request("InvalidValue", f"{name} accepts at most {BULK_LIMIT} values")
        return ids

    def _int_ids(self, name: str, *, required: bool = False) -> list[int]:
        try:
            return [as_int(v) for v in self._id_list(name, required=required)]
        except ValueError as e:
            raise bad_request("InvalidValue", f"{name} must be a comma-separated list of ids") from e

    def _page_link(self, **params: str) -> str:
        args = request.args.to_dict(flat=False)
        for key in ("page[after]", "page[before]", "page"):
            args.pop(key, None)
        args.update({k: [v] for k, v in params.items()})
        return f"{self._host()}{request.path}?{urlencode(args, doseq=True)}"

    def _paginate(
        self,
        name: str,
        records: list[dict[str, Any]],
        render: Callable[[dict[str, Any]], dict[str, Any]],
        key: Callable[[dict[str, Any]], int] = lambda r: r["id"],
        *,
        cursor_default: bool = True,
    ) -> dict[str, Any]:
        """One page of a list endpoint: cursor pagination (meta/links), or offset with ?page=N.

        `records` must be sorted by `key`; cursors encode the key, so pages stay stable while records
        are added.
        """
        offset_requested = request.args.get("page", "").isdigit()
        cursor_requested = any(k.startswith("page[") for k in request.args)
        if offset_requested or not (cursor_requested or cursor_default):
            per_page = self._int_arg("per_page", PAGE_SIZE_MAX, PAGE_SIZE_MAX)
            page = max(1, int(request.args.get("page") or 1))
            chunk = records[(page - 1) * per_page : page * per_page]
            more = page * per_page < len(records)
            return {
                name: [render(r) for r in chunk],
                "next_page": self._page_link(page=str(page + 1)) if more else None,
                "previous_page": self._page_link(page=str(page - 1)) if page > 1 else None,
                "count": len(records),
            }
        size = self._int_arg("page[size]", PAGE_SIZE_MAX, PAGE_SIZE_MAX)
        keys = [key(r) for r in records]
        after = request.args.get("page[after]")
        before = request.args.get("page[before]")
        if after:
            position = decode_cursor(after, "page", ("v",))["v"]
            start = next((i for i, k in enumerate(keys) if k > position), len(keys))
            end = start + size
        elif before:
            position = decode_cursor(before, "page", ("v",))["v"]
            end = next((i for i, k in enumerate(keys) if k >= position), len(keys))
            start = max(0, end - size)
        else:
            start, end = 0, size
        chunk = records[start:end]
        has_more = end < len(records)
        after_cursor = encode_cursor({"k": "page", "v": key(chunk[-1])}) if chunk else None
        before_cursor = encode_cursor({"k": "page", "v": key(chunk[0])}) if chunk else None
        return {
            name: [render(r) for r in chunk],
            "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
            "links": {
                "next": self._page_link(**{"page[after]": after_cursor})
                if has_more and after_cursor
                else None,
                "prev": self._page_link(**{"page[before]": before_cursor})
                if start > 0 and before_cursor
                else None,
            },
        }

    # -- sandbox-only control endpoints (no auth, never rate limited) ------------------------------

    def _control_body(self) -> dict[str, Any]:
        return self._body()

    def _control_error(self, field: str, message: str) -> Exception:
        return bad_request("InvalidValue", message)

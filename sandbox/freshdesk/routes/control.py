"""The Freshdesk sandbox's own control routes under /__sandbox/ (no auth, never rate limited): automation
rules (an admin screen in Freshdesk, no API) and a portal ticket submission."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Response, request

from sandbox.base import control
from sandbox.freshdesk.common import validation_error
from sandbox.freshdesk.routes.http import FreshdeskHttp


class ControlRoutes(FreshdeskHttp):
    """POST|GET /__sandbox/automations, DELETE /__sandbox/automations/{id}, POST /__sandbox/tickets."""

    def _control_body(self) -> dict[str, Any]:
        raw = request.get_data(cache=True)
        try:
            data = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError) as e:
            raise validation_error("body", "Request body has invalid json format", "invalid_json") from e
        if not isinstance(data, dict):
            raise validation_error("body", "Request body must be a JSON object", "invalid_json")
        return data

    def _control_error(self, field: str, message: str) -> Exception:
        return validation_error(field, message)

    def _fault_options(self, body: Mapping[str, Any]) -> dict[str, Any]:
        method, path = body.get("method"), body.get("path")
        return {"method": str(method) if method else None, "path": str(path) if path else None}

    @control("/automations", "GET")
    def _control_list_rules(self) -> Response:
        return self._json({"automations": self.automation_rules()})

    @control("/automations", "POST")
    def _control_add_rule(self) -> Response:
        """POST {"url", "body", "name"?, "method"?, "headers"?, "auth"?}; auth is {"username", "password"}
        or {"api_key"}."""
        data = self._control_body()
        auth = data.get("auth") or {}
        try:
            if not isinstance(auth, dict) or not isinstance(data.get("headers") or {}, dict):
                raise ValueError("auth and headers must be objects")
            basic = (str(auth["username"]), str(auth["password"])) if "username" in auth else None
            rule = self.add_automation_rule(
                str(data.get("url") or ""),
                data.get("body") if isinstance(data.get("body"), str) else json.dumps(data.get("body") or {}),
                name=str(data.get("name") or "Trigger webhook on ticket creation"),
                method=str(data.get("method") or "POST"),
                headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
                basic_auth=basic,
                api_key=str(auth["api_key"]) if "api_key" in auth else None,
                active=bool(data.get("active", True)),
            )
        except (KeyError, ValueError) as e:
            raise validation_error("automation", str(e)) from e
        return self._json({"automation": rule}, 201)

    @control("/automations/<int:rule_id>", "DELETE")
    def _control_remove_rule(self, rule_id: int) -> Response:
        self.remove_automation_rule(rule_id)
        return Response(status=204)

    @control("/tickets", "POST")
    def _control_submit_ticket(self) -> Response:
        body = self._control_body()
        email = body.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise validation_error("email", "email is required", "missing_field")
        extra = {k: v for k, v in body.items() if k not in ("email", "subject", "description", "name")}
        ticket = self.submit_ticket(
            email,
            str(body.get("subject") or "(no subject)"),
            str(body.get("description") or "(no description)"),
            name=body.get("name"),
            **extra,
        )
        return self._json(ticket, 201)

"""Zendesk's Webhooks API: create, read, change and delete webhooks and their signing secrets.

The Webhooks API is newer than Support's: it answers PUT/PATCH/DELETE with 204 and reports errors as
{"errors": [{"code", "title"}]}. Delivering them is the rules' part (rules.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Response, request

from sandbox.base import WEBHOOK_METHODS, route
from sandbox.zendesk.common import WEBHOOK_FORMATS, ZendeskError, new_secret, ulid, webhook_error
from sandbox.zendesk.routes.http import ZendeskHttp


class WebhookRoutes(ZendeskHttp):
    """/webhooks and /webhooks/{id}/signing_secret."""

    def _webhook_or_404(self, webhook_id: str) -> dict[str, Any]:
        webhook = self._webhooks.get(webhook_id)
        if webhook is None:
            raise webhook_error(404, "WebhookNotFound", f"Webhook {webhook_id} not found")
        return webhook

    @staticmethod
    def _webhook_fields(data: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
        errors = []
        out: dict[str, Any] = {}
        for key in ("name", "endpoint", "http_method", "request_format", "status"):
            if key in data:
                out[key] = data[key]
            elif not partial:
                errors.append(
                    {
                        "code": "InvalidInput",
                        "title": f"{key} is required",
                        "source": {"pointer": f"/webhook/{key}"},
                    }
                )
        if "endpoint" in out:
            parts = urlsplit(str(out["endpoint"]))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                errors.append({"code": "InvalidInput", "title": "endpoint must be an http(s) URL"})
        if "http_method" in out and out["http_method"] not in WEBHOOK_METHODS:
            errors.append(
                {"code": "InvalidInput", "title": f"http_method must be one of {', '.join(WEBHOOK_METHODS)}"}
            )
        if "request_format" in out and out["request_format"] not in WEBHOOK_FORMATS:
            errors.append(
                {"code": "InvalidInput", "title": "request_format must be json, xml or form_encoded"}
            )
        if "status" in out and out["status"] not in ("active", "inactive"):
            errors.append({"code": "InvalidInput", "title": "status must be active or inactive"})
        if "subscriptions" in data:
            subs = data["subscriptions"]
            if not isinstance(subs, list) or not all(isinstance(s, str) for s in subs):
                errors.append({"code": "InvalidInput", "title": "subscriptions must be a list of strings"})
            else:
                out["subscriptions"] = list(subs)
        if "description" in data:
            out["description"] = data["description"]
        if "custom_headers" in data:
            if not isinstance(data["custom_headers"], dict):
                errors.append({"code": "InvalidInput", "title": "custom_headers must be an object"})
            else:
                out["custom_headers"] = {str(k): str(v) for k, v in data["custom_headers"].items()}
        if "authentication" in data:
            auth = data["authentication"]
            kinds = {
                "basic_auth": ("username", "password"),
                "bearer_token": ("token",),
                "api_key": ("name", "value"),
            }
            if auth is None:
                out["authentication"] = None
            elif (
                not isinstance(auth, dict)
                or auth.get("type") not in kinds
                or not isinstance(auth.get("data"), dict)
                or not all(auth["data"].get(k) for k in kinds[auth["type"]])
            ):
                errors.append({"code": "InvalidInput", "title": "authentication is invalid"})
            else:
                out["authentication"] = {"type": auth["type"], "data": dict(auth["data"])}
        if errors:
            raise ZendeskError(400, {"errors": errors})
        return out

    @route("/webhooks", "GET")
    def _list_webhooks(self) -> Response:
        name_filter = (request.args.get("filter[name_contains]") or "").lower()
        status_filter = request.args.get("filter[status]")
        with self._lock:
            hooks = [
                w
                for w in sorted(self._webhooks.values(), key=lambda w: w["_seq"])
                if name_filter in w["name"].lower() and (not status_filter or w["status"] == status_filter)
            ]
            page = self._paginate("webhooks", hooks, self._render_webhook, lambda w: w["_seq"])
            return self._json(page)

    @route("/webhooks", "POST")
    def _create_webhook(self) -> Response:
        data = self._wrapped(self._body(), "webhook")
        fields = self._webhook_fields(data, partial=False)
        secret_in = data.get("signing_secret")
        secret = secret_in.get("secret") if isinstance(secret_in, dict) else None
        with self._lock:
            now = self._stamp()
            webhook = {
                "id": ulid(),
                "name": "",
                "description": "",
                "endpoint": "",
                "http_method": "POST",
                "request_format": "json",
                "status": "active",
                "subscriptions": [],
                "created_at": now,
                "created_by": str(self.api_user_id),
                "updated_at": now,
                "updated_by": str(self.api_user_id),
                "_secret": secret or new_secret(),
                "_seq": next(self._seq),
            }
            webhook.update(fields)
            self._webhooks[webhook["id"]] = webhook
            rendered = self._render_webhook(webhook)
        return self._json({"webhook": rendered}, 201, {"Location": self._url(f"webhooks/{webhook['id']}")})

    @route("/webhooks/<webhook_id>", "GET")
    def _show_webhook(self, webhook_id: str) -> Response:
        with self._lock:
            return self._json({"webhook": self._render_webhook(self._webhook_or_404(webhook_id))})

    def _change_webhook(self, webhook_id: str, *, partial: bool) -> Response:
        data = self._wrapped(self._body(), "webhook")
        fields = self._webhook_fields(data, partial=partial)
        with self._lock:
            webhook = self._webhook_or_404(webhook_id)
            if not partial:  # PUT replaces every writable field it does not name
                webhook["description"] = ""
                webhook.pop("custom_headers", None)
                webhook.pop("authentication", None)
            webhook.update(fields)
            webhook["updated_at"] = self._stamp(webhook["updated_at"])
            webhook["updated_by"] = str(self.api_user_id)
        return Response(status=204)

    @route("/webhooks/<webhook_id>", "PUT")
    def _replace_webhook(self, webhook_id: str) -> Response:
        return self._change_webhook(webhook_id, partial=False)

    @route("/webhooks/<webhook_id>", "PATCH")
    def _patch_webhook(self, webhook_id: str) -> Response:
        return self._change_webhook(webhook_id, partial=True)

    @route("/webhooks/<webhook_id>", "DELETE")
    def _delete_webhook(self, webhook_id: str) -> Response:
        with self._lock:
            self._webhook_or_404(webhook_id)
            del self._webhooks[webhook_id]
        return Response(status=204)

    @route("/webhooks/<webhook_id>/signing_secret", "GET")
    def _show_signing_secret(self, webhook_id: str) -> Response:
        with self._lock:
            webhook = self._webhook_or_404(webhook_id)
            return self._json({"signing_secret": {"algorithm": "SHA256", "secret": webhook["_secret"]}})

    @route("/webhooks/<webhook_id>/signing_secret", "POST")
    def _reset_signing_secret(self, webhook_id: str) -> Response:
        with self._lock:
            webhook = self._webhook_or_404(webhook_id)
            webhook["_secret"] = new_secret()
            return self._json({"signing_secret": {"algorithm": "SHA256", "secret": webhook["_secret"]}}, 201)

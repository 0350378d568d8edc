"""Zendesk's triggers and SLA policies API: validating and storing them (rules.py runs them)."""

from __future__ import annotations

from collections.abc import Mapping
from copy import deepcopy
from typing import Any

from flask import Response, request

from sandbox.base import route
from sandbox.zendesk.common import (
    ACTION_FIELDS,
    CONDITION_OPERATORS,
    PRIORITIES,
    SLA_METRICS,
    STATUSES,
    TICKET_TYPES,
    Details,
    as_bool,
    as_int,
    not_found,
)
from sandbox.zendesk.routes.http import ZendeskHttp


class TriggerRoutes(ZendeskHttp):
    """/triggers and /slas/policies; both list offset-style, as the spec's schemas show."""

    # -- validation --------------------------------------------------------------------------------

    def _validate_conditions(
        self, conditions: Any, details: Details, field: str, *, triggers: bool
    ) -> dict[str, Any]:
        if not isinstance(conditions, dict):
            details.add(field, f"{field.capitalize()}: must be an object with 'all' and 'any' lists")
            return {"all": [], "any": []}
        out: dict[str, Any] = {"all": [], "any": []}
        for group in ("all", "any"):
            items = conditions.get(group) or []
            if not isinstance(items, list):
                details.add(field, f"{field.capitalize()}: '{group}' must be a list")
                continue
            for item in items:
                if not isinstance(item, dict) or "field" not in item or "operator" not in item:
                    details.add(field, f"{field.capitalize()}: every condition needs field and operator")
                    continue
                if triggers:
                    allowed = CONDITION_OPERATORS.get(item["field"])
                    if allowed is None:
                        details.add(field, f"Conditions: unsupported condition field {item['field']!r}")
                        continue
                    if item["operator"] not in allowed:
                        details.add(
                            field,
                            f"Conditions: operator {item['operator']!r} is not valid for {item['field']!r}",
                        )
                        continue
                out[group].append(
                    {"field": item["field"], "operator": item["operator"], "value": item.get("value")}
                )
        return out

    def _validate_actions(self, actions: Any, details: Details) -> list[dict[str, Any]]:
        if not isinstance(actions, list) or not actions:
            details.add("actions", "Actions: at least one action is required", "BlankValue")
            return []
        out = []
        for action in actions:
            if not isinstance(action, dict) or action.get("field") not in ACTION_FIELDS:
                name = action.get("field") if isinstance(action, dict) else action
                details.add("actions", f"Actions: unsupported action {name!r}")
                continue
            field, value = action["field"], action.get("value")
            if field == "notification_webhook":
                if not (
                    isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
                ):
                    details.add("actions", "Actions: notification_webhook needs [webhook_id, body]")
                    continue
                webhook = self._webhooks.get(value[0])
                if webhook is None:
                    details.add("actions", f"Actions: webhook {value[0]} does not exist")
                    continue
                if "conditional_ticket_events" not in webhook.get("subscriptions", []):
                    details.add(
                        "actions",
                        f"Actions: webhook {value[0]} is not connected to triggers "
                        "(subscriptions must be ['conditional_ticket_events'])",
                    )
                    continue
            elif field == "status" and value not in STATUSES:
                details.add("actions", f"Actions: status {value!r} is not valid")
                continue
            elif field == "priority" and value not in PRIORITIES:
                details.add("actions", f"Actions: priority {value!r} is not valid")
                continue
            elif field == "type" and value not in TICKET_TYPES:
                details.add("actions", f"Actions: type {value!r} is not valid")
                continue
            elif field in ("group_id", "assignee_id") and value not in (None, "", "current_user"):
                table = self._groups if field == "group_id" else self._users
                if self._ref(details, value, field, table) is None:
                    continue
            out.append({"field": field, "value": deepcopy(value)})
        return out

    def _trigger_fields(self, data: Mapping[str, Any], trigger: Mapping[str, Any] | None) -> dict[str, Any]:
        details = Details()
        out: dict[str, Any] = {}
        if "title" in data or trigger is None:
            title = data.get("title")
            if not isinstance(title, str) or not title.strip():
                details.add("title", "Title: cannot be blank", "BlankValue")
            else:
                out["title"] = out["raw_title"] = title
        if "conditions" in data or trigger is None:
            out["conditions"] = self._validate_conditions(
                data.get("conditions"), details, "conditions", triggers=True
            )
        if "actions" in data or trigger is None:
            out["actions"] = self._validate_actions(data.get("actions"), details)
        if "active" in data:
            out["active"] = as_bool(data["active"])
        if "description" in data:
            out["description"] = data["description"]
        if "category_id" in data:
            out["category_id"] = None if data["category_id"] is None else str(data["category_id"])
        if "position" in data:
            try:
                out["position"] = as_int(data["position"])
            except ValueError:
                details.add("position", "Position: must be an integer")
        details.raise_if_any()
        return out

    def _sla_fields(self, data: Mapping[str, Any], policy: Mapping[str, Any] | None) -> dict[str, Any]:
        details = Details()
        out: dict[str, Any] = {}
        if "title" in data or policy is None:
            title = data.get("title")
            if not isinstance(title, str) or not title.strip():
                details.add("title", "Title: cannot be blank", "BlankValue")
            else:
                out["title"] = title
        if "filter" in data or policy is None:
            if data.get("filter") is None:
                details.add("filter", "Filter: cannot be blank", "BlankValue")
            else:
                out["filter"] = self._validate_conditions(data["filter"], details, "filter", triggers=False)
        if "description" in data:
            out["description"] = data["description"] or ""
        if "position" in data:
            try:
                out["position"] = as_int(data["position"])
            except ValueError:
                details.add("position", "Position: must be an integer")
        if "policy_metrics" in data:
            metrics = data["policy_metrics"]
            if not isinstance(metrics, list):
                details.add("policy_metrics", "Policy metrics: must be a list")
                metrics = []
            clean = []
            for metric in metrics:
                if not isinstance(metric, dict):
                    details.add("policy_metrics", "Policy metrics: every metric must be an object")
                    continue
                if metric.get("priority") not in PRIORITIES:
                    details.add(
                        "policy_metrics", f"Policy metrics: priority {metric.get('priority')!r} is not valid"
                    )
                if metric.get("metric") not in SLA_METRICS:
                    details.add(
                        "policy_metrics", f"Policy metrics: metric {metric.get('metric')!r} is not valid"
                    )
                target = metric.get("target")
                if isinstance(target, bool) or not isinstance(target, int) or target < 0:
                    details.add("policy_metrics", "Policy metrics: target must be a whole number of minutes")
                clean.append(
                    {
                        "priority": metric.get("priority"),
                        "metric": metric.get("metric"),
                        "target": target,
                        "business_hours": as_bool(metric.get("business_hours", False)),
                    }
                )
            out["policy_metrics"] = clean
        details.raise_if_any()
        return out

    # -- triggers ----------------------------------------------------------------------------------

    def _trigger_or_404(self, trigger_id: int) -> dict[str, Any]:
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            raise not_found()
        return trigger

    @route("/triggers", "GET")
    def _list_triggers(self) -> Response:
        active = request.args.get("active")
        with self._lock:
            triggers = sorted(self._triggers.values(), key=lambda t: (t["position"], t["id"]))
            if active is not None:
                triggers = [t for t in triggers if t["active"] == as_bool(active)]
            ordered = list(enumerate(triggers))
            page = self._paginate(
                "triggers",
                [dict(t, _rank=i) for i, t in ordered],
                self._render_trigger,
                lambda t: t["_rank"],
                cursor_default=False,
            )
            return self._json(page)

    @route("/triggers", "POST")
    def _create_trigger(self) -> Response:
        data = self._wrapped(self._body(), "trigger")
        with self._lock:
            fields = self._trigger_fields(data, None)
            now = self._stamp()
            trigger = {
                "id": next(self._trigger_ids),
                "title": "",
                "raw_title": "",
                "description": None,
                "active": True,
                "default": False,
                "position": max((t["position"] for t in self._triggers.values()), default=0) + 1,
                "category_id": None,
                "conditions": {"all": [], "any": []},
                "actions": [],
                "created_at": now,
                "updated_at": now,
            }
            trigger.update(fields)
            self._triggers[trigger["id"]] = trigger
            rendered = self._render_trigger(trigger)
        return self._json({"trigger": rendered}, 201, {"Location": rendered["url"]})

    @route("/triggers/<int:trigger_id>", "GET")
    def _show_trigger(self, trigger_id: int) -> Response:
        with self._lock:
            return self._json({"trigger": self._render_trigger(self._trigger_or_404(trigger_id))})

    @route("/triggers/<int:trigger_id>", "PUT")
    def _update_trigger(self, trigger_id: int) -> Response:
        data = self._wrapped(self._body(), "trigger")
        with self._lock:
            trigger = self._trigger_or_404(trigger_id)
            fields = self._trigger_fields(data, trigger)
            trigger.update(fields)
            trigger["updated_at"] = self._stamp(trigger["updated_at"])
            return self._json({"trigger": self._render_trigger(trigger)})

    @route("/triggers/<int:trigger_id>", "DELETE")
    def _delete_trigger(self, trigger_id: int) -> Response:
        with self._lock:
            self._trigger_or_404(trigger_id)
            del self._triggers[trigger_id]
        return Response(status=204)

    # -- SLA policies ------------------------------------------------------------------------------

    def _sla_or_404(self, sla_policy_id: int) -> dict[str, Any]:
        policy = self._slas.get(sla_policy_id)
        if policy is None:
            raise not_found()
        return policy

    @route("/slas/policies", "GET")
    def _list_slas(self) -> Response:
        with self._lock:
            policies = sorted(self._slas.values(), key=lambda p: (p["position"], p["id"]))
            return self._json(
                {
                    "sla_policies": [self._render_sla(p) for p in policies],
                    "count": len(policies),
                    "next_page": None,
                    "previous_page": None,
                }
            )

    @route("/slas/policies", "POST")
    def _create_sla(self) -> Response:
        data = self._wrapped(self._body(), "sla_policy")
        with self._lock:
            fields = self._sla_fields(data, None)
            now = self._stamp()
            policy = {
                "id": next(self._sla_ids),
                "title": "",
                "description": "",
                "position": max((p["position"] for p in self._slas.values()), default=0) + 1,
                "filter": {"all": [], "any": []},
                "policy_metrics": [],
                "created_at": now,
                "updated_at": now,
            }
            policy.update(fields)
            self._slas[policy["id"]] = policy
            rendered = self._render_sla(policy)
        return self._json({"sla_policy": rendered}, 201, {"Location": rendered["url"]})

    @route("/slas/policies/<int:sla_policy_id>", "GET")
    def _show_sla(self, sla_policy_id: int) -> Response:
        with self._lock:
            return self._json({"sla_policy": self._render_sla(self._sla_or_404(sla_policy_id))})

    @route("/slas/policies/<int:sla_policy_id>", "PUT")
    def _update_sla(self, sla_policy_id: int) -> Response:
        data = self._wrapped(self._body(), "sla_policy")
        with self._lock:
            policy = self._sla_or_404(sla_policy_id)
            policy.update(self._sla_fields(data, policy))
            policy["updated_at"] = self._stamp(policy["updated_at"])
            return self._json({"sla_policy": self._render_sla(policy)})

    @route("/slas/policies/<int:sla_policy_id>", "DELETE")
    def _delete_sla(self, sla_policy_id: int) -> Response:
        with self._lock:
            self._sla_or_404(sla_policy_id)
            del self._slas[sla_policy_id]
        return Response(status=204)

"""`tierdesk setup zendesk`: the Zendesk side of tierdesk, created or brought up to date idempotently.

Three kinds of object, each found by its name so a second run changes nothing:
- the webhook (Webhooks API) pointing at tierdesk, with its signing secret;
- the trigger that calls it when a ticket is created and does not carry the routed marker
  (the loop guard), with the documented JSON body;
- one SLA policy per SLA name in the mapping, whose filter matches tierdesk's SLA tag and whose
  targets come from the mapping (the same target for every priority: the tag picks the policy).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.base import Helpdesk
from connectors.pagination import follow_links
from connectors.zendesk.webhooks import TRIGGER_BODY

PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class SlaSpec:
    name: str
    tag: str
    first_response_minutes: int | None
    resolution_minutes: int | None


@dataclass(frozen=True)
class Step:
    action: str  # create | update | unchanged
    kind: str  # webhook | trigger | sla_policy
    name: str
    detail: str = ""


@dataclass
class SetupResult:
    steps: list[Step] = field(default_factory=list)
    webhook_id: str | None = None
    secret: str | None = None

    @property
    def changes(self) -> int:
        return sum(1 for s in self.steps if s.action != "unchanged")


def _list(zendesk: Helpdesk, path: str, key: str) -> Iterator[dict[str, Any]]:
    """Every item of a Zendesk list, following offset or cursor pagination."""

    def fetch(url: str, params: Mapping[str, Any] | None) -> tuple[dict[str, Any], str | None]:
        page = zendesk.http.get(url)
        links = page.get("links") or {}
        following = page.get("next_page") or (
            links.get("next") if (page.get("meta") or {}).get("has_more") else None
        )
        return page, following

    def repeated(url: str) -> RuntimeError:
        return RuntimeError(f"pagination of {path} repeated {url}")

    for page, _ in follow_links(fetch, path, None, repeated):
        yield from page.get(key, [])


def _differs(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    return [k for k, v in desired.items() if current.get(k) != v]


def _conditions(marker: str) -> dict[str, list[dict[str, Any]]]:
    return {
        "all": [
            {"field": "update_type", "operator": "is", "value": "Create"},
            {"field": "current_tags", "operator": "not_includes", "value": marker},
        ],
        "any": [],
    }


def _sla_body(title: str, sla: SlaSpec) -> dict[str, Any]:
    metrics = []
    for priority in PRIORITIES:
        if sla.first_response_minutes is not None:
            metrics.append(
                {
                    "priority": priority,
                    "metric": "first_reply_time",
                    "target": sla.first_response_minutes,
                    "business_hours": False,
                }
            )
        if sla.resolution_minutes is not None:
            metrics.append(
                {
                    "priority": priority,
                    "metric": "requester_wait_time",
                    "target": sla.resolution_minutes,
                    "business_hours": False,
                }
            )
    return {
        "title": title,
        "description": f"Applied by tierdesk's tag {sla.tag}. Managed by `tierdesk setup zendesk`.",
        "filter": {"all": [{"field": "current_tags", "operator": "includes", "value": sla.tag}], "any": []},
        "policy_metrics": metrics,
    }


def run(
    zendesk: Helpdesk,
    *,
    endpoint: str,
    slas: list[SlaSpec],
    name: str = "tierdesk",
    dry_run: bool = False,
    echo: Callable[[str], None] | None = None,
) -> SetupResult:
    """Bring the webhook, trigger and SLA policies to the wanted state; with dry_run only say what."""
    result = SetupResult()

    def step(action: str, kind: str, what: str, detail: str = "") -> None:
        result.steps.append(Step(action, kind, what, detail))
        if echo:
            verb = {"create": "create", "update": "update", "unchanged": "ok"}[action]
            prefix = "would " if dry_run and action != "unchanged" else ""
            echo(f"{prefix}{verb:<7} {kind:<10} {what}{f'  ({detail})' if detail else ''}")

    # 1. the webhook
    wanted_hook = {
        "name": name,
        "endpoint": endpoint,
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        "subscriptions": ["conditional_ticket_events"],
    }
    hook = next((h for h in _list(zendesk, "/api/v2/webhooks", "webhooks") if h.get("name") == name), None)
    if hook is None:
        step("create", "webhook", name, endpoint)
        if not dry_run:
            hook = zendesk.http.post("/api/v2/webhooks", {"webhook": wanted_hook})["webhook"]
    elif diff := _differs(hook, wanted_hook):
        step("update", "webhook", name, ", ".join(diff))
        if not dry_run:
            zendesk.http.put(f"/api/v2/webhooks/{hook['id']}", {"webhook": {**hook, **wanted_hook}})
    else:
        step("unchanged", "webhook", name, endpoint)
    if hook is not None:
        result.webhook_id = str(hook["id"])
        secret = zendesk.http.get(f"/api/v2/webhooks/{hook['id']}/signing_secret")
        result.secret = secret["signing_secret"]["secret"]

    # 2. the trigger on ticket creation
    title = f"{name}: route new tickets"
    wanted_trigger = {
        "title": title,
        "active": True,
        "conditions": _conditions(zendesk.marker_tag),
        "actions": [
            {"field": "notification_webhook", "value": [result.webhook_id or "<new webhook>", TRIGGER_BODY]}
        ],
    }
    trigger = next(
        (t for t in _list(zendesk, "/api/v2/triggers", "triggers") if t.get("title") == title), None
    )
    if trigger is None:
        step("create", "trigger", title, "ticket created, not tagged " + zendesk.marker_tag)
        if not dry_run:
            zendesk.http.post("/api/v2/triggers", {"trigger": wanted_trigger})
    elif diff := _differs(trigger, wanted_trigger):
        step("update", "trigger", title, ", ".join(diff))
        if not dry_run:
            zendesk.http.put(f"/api/v2/triggers/{trigger['id']}", {"trigger": wanted_trigger})
    else:
        step("unchanged", "trigger", title)

    # 3. one SLA policy per SLA name
    policies = {p.get("title"): p for p in _list(zendesk, "/api/v2/slas/policies", "sla_policies")}
    for sla in slas:
        policy_title = f"{name}: {sla.name}"
        wanted = _sla_body(policy_title, sla)
        current = policies.get(policy_title)
        targets = (
            ", ".join(
                f"{label} {minutes} min"
                for label, minutes in (
                    ("first reply", sla.first_response_minutes),
                    ("resolution", sla.resolution_minutes),
                )
                if minutes is not None
            )
            or "no targets in the mapping"
        )
        if current is None:
            step("create", "sla_policy", policy_title, f"tag {sla.tag}; {targets}")
            if not dry_run:
                zendesk.http.post("/api/v2/slas/policies", {"sla_policy": wanted})
        elif diff := _differs(current, wanted):
            step("update", "sla_policy", policy_title, ", ".join(diff))
            if not dry_run:
                zendesk.http.put(f"/api/v2/slas/policies/{current['id']}", {"sla_policy": wanted})
        else:
            step("unchanged", "sla_policy", policy_title, targets)
    return result

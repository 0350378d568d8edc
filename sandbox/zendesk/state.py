"""The Zendesk sandbox's account: its records in memory, their ids and indexes, and how they render.

Everything lives behind one re-entrant lock. The direct-access methods here (add_user, get_ticket, ...)
serve seeding, tests and the demo without HTTP and without triggers; the API's operations build on this
class (people.py, rules.py, tickets.py) and the routes (routes/) on those.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from copy import deepcopy
from datetime import datetime
from typing import Any

from sandbox.base import HelpdeskSandbox, SlidingWindow, export_record
from sandbox.base.limits import LimitOption
from sandbox.zendesk.common import API, DEFAULT_ACCOUNT_ID, DEFAULT_BRAND_ID, iso, normalize_tags


class ZendeskState(HelpdeskSandbox):
    """In-memory Zendesk account; ZendeskSandbox (server.py) gives it its HTTP face."""

    thread_name = "zd-sandbox"
    api_prefix = API

    def __init__(
        self,
        email: str = "agent@example.com",
        token: str = "sandbox-token",  # noqa: S107 - a documented sandbox default, not a secret
        rate_limit_per_minute: int | None = None,
        incremental_limit_per_minute: int | None = None,
        webhook_retry_delay: float = 0.5,
        *,
        endpoint_limits: LimitOption = None,
        high_volume: bool = False,
    ) -> None:
        self.email = email
        self.token = token
        self.rate_limit_per_minute = rate_limit_per_minute
        self.incremental_limit_per_minute = incremental_limit_per_minute
        self.webhook_retry_delay = webhook_retry_delay
        self.high_volume = high_volume  # the High Volume API add-on: larger endpoint budgets
        self.account_id = DEFAULT_ACCOUNT_ID

        self._lock = threading.RLock()
        self._users: dict[int, dict[str, Any]] = {}
        self._orgs: dict[int, dict[str, Any]] = {}
        self._groups: dict[int, dict[str, Any]] = {}
        self._tickets: dict[int, dict[str, Any]] = {}
        self._comments: dict[int, list[dict[str, Any]]] = {}
        self._jobs: dict[str, dict[str, Any]] = {}
        self._webhooks: dict[str, dict[str, Any]] = {}
        self._triggers: dict[int, dict[str, Any]] = {}
        self._slas: dict[int, dict[str, Any]] = {}
        self._email_index: dict[str, int] = {}
        self._user_external_index: dict[str, int] = {}
        self._org_external_index: dict[str, int] = {}
        self._org_name_index: dict[str, int] = {}

        self._user_ids = itertools.count(1_000_001)
        self._org_ids = itertools.count(2_000_001)
        self._group_ids = itertools.count(3_000_001)
        self._ticket_ids = itertools.count(1)
        self._comment_ids = itertools.count(5_000_000_001)
        self._audit_ids = itertools.count(6_000_000_001)
        self._event_ids = itertools.count(7_000_000_001)
        self._trigger_ids = itertools.count(8_000_001)
        self._sla_ids = itertools.count(9_000_001)
        self._invocation_ids = itertools.count(8_100_000_001)
        self._seq = itertools.count(1)

        self._rate = SlidingWindow(rate_limit_per_minute) if rate_limit_per_minute else None
        self._incremental_rate = (
            SlidingWindow(incremental_limit_per_minute) if incremental_limit_per_minute else None
        )
        self._init_controls()
        self.set_endpoint_limits(endpoint_limits)

        now = self._now()
        self.api_user_id = self.add_user(
            "Sandbox Agent", email, role="agent", created_at=now, updated_at=now
        )["id"]
        self.app = self._build_app()

    # -- lifecycle ---------------------------------------------------------------------------------

    def _open_pools(self) -> None:
        self._webhook_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="zd-webhook")
        self._job_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="zd-job")

    def _close_pools(self) -> None:
        self._webhook_pool.shutdown(wait=False, cancel_futures=True)
        self._job_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def credentials(self) -> tuple[str, str]:
        """The (username, password) pair for HTTP Basic, as `requests` takes it."""
        return (f"{self.email}/token", self.token)

    # -- direct access for seeding, tests and the demo (no HTTP, no triggers) ----------------------

    def add_group(
        self,
        name: str,
        *,
        description: str = "",
        default: bool = False,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Create a group directly; returns its JSON."""
        with self._lock:
            when = created_at or self._now()
            group = {
                "id": next(self._group_ids),
                "name": name,
                "description": description,
                "default": default,
                "deleted": False,
                "is_public": True,
                "created_at": when,
                "updated_at": when,
                "_seq": next(self._seq),
            }
            self._groups[group["id"]] = group
            self._note_time(when)
            return self._render_group(group)

    def add_organization(
        self,
        name: str,
        *,
        domain_names: Iterable[str] = (),
        tags: Iterable[str] = (),
        organization_fields: Mapping[str, Any] | None = None,
        external_id: str | None = None,
        group_id: int | None = None,
        notes: str = "",
        details: str = "",
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Create an organization directly; returns its JSON."""
        with self._lock:
            when = created_at or self._now()
            org = self._new_org(next(self._org_ids), when)
            org.update(
                name=name,
                domain_names=list(domain_names),
                tags=normalize_tags(list(tags)),
                organization_fields=dict(organization_fields or {}),
                external_id=external_id,
                group_id=group_id,
                notes=notes,
                details=details,
                updated_at=updated_at or when,
            )
            self._orgs[org["id"]] = org
            self._index_org(org)
            self._note_time(org["updated_at"])
            return self._render_org(org)

    def add_user(
        self,
        name: str,
        email: str | None = None,
        *,
        role: str = "end-user",
        organization_id: int | None = None,
        tags: Iterable[str] = (),
        user_fields: Mapping[str, Any] | None = None,
        external_id: str | None = None,
        time_zone: str = "UTC",
        locale: str = "en-US",
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Create a user directly; returns its JSON."""
        with self._lock:
            if email and email.lower() in self._email_index:
                raise ValueError(f"email already used: {email}")
            when = created_at or self._now()
            user = self._new_user(next(self._user_ids), when)
            user.update(
                name=name,
                email=email.lower() if email else None,
                role=role,
                organization_id=organization_id,
                tags=normalize_tags(list(tags)),
                user_fields=dict(user_fields or {}),
                external_id=external_id,
                time_zone=time_zone,
                locale=locale,
                updated_at=updated_at or when,
            )
            self._fit_role(user)
            self._users[user["id"]] = user
            self._index_user(user)
            self._note_time(user["updated_at"])
            return self._render_user(user)

    def get_user(self, user_id: int) -> dict[str, Any]:
        with self._lock:
            return self._render_user(self._users[user_id])

    def get_organization(self, organization_id: int) -> dict[str, Any]:
        with self._lock:
            return self._render_org(self._orgs[organization_id])

    def get_ticket(self, ticket_id: int) -> dict[str, Any]:
        with self._lock:
            return self._render_ticket(self._tickets[ticket_id])

    def find_user(self, email: str) -> dict[str, Any] | None:
        with self._lock:
            user_id = self._email_index.get(email.lower())
            return self._render_user(self._users[user_id]) if user_id else None

    def ticket_comments(self, ticket_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return [self._render_comment(c) for c in self._comments[ticket_id]]

    def ticket_reopens(self, ticket_id: int) -> int:
        """How often the ticket went from solved back to an unsolved status (not a ticket field)."""
        with self._lock:
            return int(self._tickets[ticket_id]["_reopens"])

    def ticket_updated_by(self, ticket_id: int) -> int | None:
        """The user whose request last changed the ticket."""
        with self._lock:
            return self._tickets[ticket_id]["_updated_by_id"]

    def group_ids(self) -> dict[str, int]:
        with self._lock:
            return {g["name"]: g["id"] for g in self._groups.values() if not g["deleted"]}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "users": len(self._users),
                "organizations": len(self._orgs),
                "groups": len(self._groups),
                "tickets": len(self._tickets),
                "comments": sum(len(c) for c in self._comments.values()),
                "webhooks": len(self._webhooks),
                "triggers": len(self._triggers),
                "sla_policies": len(self._slas),
            }

    # -- records -----------------------------------------------------------------------------------

    def _new_user(self, user_id: int, when: datetime) -> dict[str, Any]:
        return {
            "id": user_id,
            "name": "",
            "email": None,
            "role": "end-user",
            "role_type": None,
            "custom_role_id": None,
            "organization_id": None,
            "default_group_id": None,
            "tags": [],
            "user_fields": {},
            "external_id": None,
            "alias": "",
            "active": True,
            "verified": False,
            "suspended": False,
            "shared": False,
            "shared_agent": False,
            "shared_phone_number": None,
            "moderator": False,
            "only_private_comments": False,
            "restricted_agent": True,
            "ticket_restriction": "requested",
            "two_factor_auth_enabled": None,
            "time_zone": "UTC",
            "iana_time_zone": "Etc/UTC",
            "locale": "en-US",
            "locale_id": 1,
            "phone": None,
            "photo": None,
            "signature": None,
            "details": "",
            "notes": "",
            "report_csv": False,
            "chat_only": False,
            "last_login_at": None,
            "created_at": when,
            "updated_at": when,
            "_seq": next(self._seq),
        }

    @staticmethod
    def _fit_role(user: dict[str, Any]) -> None:
        """Agent-only attributes follow the role, as Zendesk shows them."""
        agent = user["role"] in ("agent", "admin")
        user["restricted_agent"] = not agent
        user["ticket_restriction"] = None if agent else "requested"
        user["role_type"] = 4 if user["role"] == "admin" else None
        user["moderator"] = agent

    def _new_org(self, org_id: int, when: datetime) -> dict[str, Any]:
        return {
            "id": org_id,
            "name": "",
            "domain_names": [],
            "tags": [],
            "organization_fields": {},
            "external_id": None,
            "group_id": None,
            "notes": "",
            "details": "",
            "shared_tickets": False,
            "shared_comments": False,
            "created_at": when,
            "updated_at": when,
            "_seq": next(self._seq),
        }

    def _new_ticket(self, ticket_id: int, when: datetime, via_channel: str) -> dict[str, Any]:
        return {
            "id": ticket_id,
            "external_id": None,
            "type": None,
            "subject": "",
            "raw_subject": "",
            "description": "",
            "priority": None,
            "status": "new",
            "recipient": None,
            "requester_id": None,
            "submitter_id": None,
            "assignee_id": None,
            "organization_id": None,
            "group_id": None,
            "collaborator_ids": [],
            "follower_ids": [],
            "email_cc_ids": [],
            "forum_topic_id": None,
            "problem_id": None,
            "has_incidents": False,
            "is_public": True,
            "due_at": None,
            "tags": [],
            "custom_fields": [],
            "satisfaction_rating": {"score": "unoffered"},
            "sharing_agreement_ids": [],
            "followup_ids": [],
            "ticket_form_id": None,
            "brand_id": DEFAULT_BRAND_ID,
            "allow_channelback": False,
            "allow_attachments": True,
            "from_messaging_channel": False,
            "via": {"channel": via_channel, "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": when,
            "updated_at": when,
            "_seq": next(self._seq),
            "_reopens": 0,
            "_updated_by_id": None,
            "_first_reply_at": None,  # the first public comment by an agent after the opening one
            "_solved_at": None,  # the latest time the ticket became solved
        }

    def _index_user(self, user: dict[str, Any]) -> None:
        if user["email"]:
            self._email_index[user["email"].lower()] = user["id"]
        if user["external_id"]:
            self._user_external_index[str(user["external_id"]).lower()] = user["id"]

    def _unindex_user(self, user: dict[str, Any]) -> None:
        if user["email"]:
            self._email_index.pop(user["email"].lower(), None)
        if user["external_id"]:
            self._user_external_index.pop(str(user["external_id"]).lower(), None)

    def _index_org(self, org: dict[str, Any]) -> None:
        self._org_name_index[org["name"].lower()] = org["id"]
        if org["external_id"]:
            self._org_external_index[str(org["external_id"]).lower()] = org["id"]

    def _unindex_org(self, org: dict[str, Any]) -> None:
        self._org_name_index.pop(org["name"].lower(), None)
        if org["external_id"]:
            self._org_external_index.pop(str(org["external_id"]).lower(), None)

    def _touch(self, record: dict[str, Any]) -> None:
        record["updated_at"] = self._stamp(record["updated_at"])
        record["_seq"] = next(self._seq)

    def _apply_ticket_changes(
        self,
        ticket: dict[str, Any],
        changes: Mapping[str, Any],
        event_type: str,
        via: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        events = []
        for key, value in changes.items():
            previous = ticket.get(key)
            if previous == value and event_type == "Change":
                continue
            ticket[key] = deepcopy(value)
            if key == "raw_subject":
                continue
            event: dict[str, Any] = {
                "id": next(self._event_ids),
                "type": event_type,
                "field_name": key,
                "value": iso(value) if isinstance(value, datetime) else deepcopy(value),
            }
            if event_type == "Change":
                event["previous_value"] = iso(previous) if isinstance(previous, datetime) else previous
            if via is not None:
                event["via"] = dict(via)
            events.append(event)
        return events

    # -- rendering ---------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self._host()}{API}/{path}.json"

    def _export(self, record: Mapping[str, Any], path: str | None) -> dict[str, Any]:
        out = export_record(record)
        if path is not None:
            out["url"] = self._url(path)
        return out

    def _render_user(self, user: Mapping[str, Any]) -> dict[str, Any]:
        return self._export(user, f"users/{user['id']}")

    def _render_org(self, org: Mapping[str, Any]) -> dict[str, Any]:
        return self._export(org, f"organizations/{org['id']}")

    def _render_group(self, group: Mapping[str, Any]) -> dict[str, Any]:
        return self._export(group, f"groups/{group['id']}")

    def _render_ticket(self, ticket: Mapping[str, Any]) -> dict[str, Any]:
        return self._export(ticket, f"tickets/{ticket['id']}")

    def _render_comment(self, comment: Mapping[str, Any]) -> dict[str, Any]:
        return self._export(comment, None)

    def _render_job(self, job: Mapping[str, Any]) -> dict[str, Any]:
        return self._export(job, f"job_statuses/{job['id']}")

    def _render_trigger(self, trigger: Mapping[str, Any]) -> dict[str, Any]:
        return self._export(trigger, f"triggers/{trigger['id']}")

    def _render_sla(self, policy: Mapping[str, Any]) -> dict[str, Any]:
        return self._export(policy, f"slas/policies/{policy['id']}")

    def _render_webhook(self, webhook: Mapping[str, Any]) -> dict[str, Any]:
        out = self._export(webhook, None)
        auth = webhook.get("authentication")
        if auth:  # like Zendesk, never echo credentials back
            data = {"username": auth["data"]["username"]} if auth["type"] == "basic_auth" else {}
            out["authentication"] = {"type": auth["type"], "add_position": "header", "data": data}
        return out

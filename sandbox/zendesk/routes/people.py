"""Zendesk's users, organizations and groups API, with user and organization search."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, request

from sandbox.base import route
from sandbox.zendesk.common import ZendeskError, as_bool, as_int, bad_request, not_found
from sandbox.zendesk.routes.http import ZendeskHttp


class PeopleRoutes(ZendeskHttp):
    """/users, /organizations and /groups (their bulk updates are jobs: routes/jobs.py)."""

    # -- users -------------------------------------------------------------------------------------

    def _user_or_404(self, user_id: int) -> dict[str, Any]:
        user = self._users.get(user_id)
        if user is None:
            raise not_found()
        return user

    @route("/users/me", "GET")
    def _users_me(self) -> Response:
        with self._lock:
            return self._json({"user": self._render_user(self._users[self.api_user_id])})

    @route("/users", "GET")
    def _list_users(self) -> Response:
        roles = set(request.args.getlist("role") + request.args.getlist("role[]"))
        external_id = request.args.get("external_id")
        with self._lock:
            users = sorted(self._users.values(), key=lambda u: u["id"])
            if roles:
                users = [u for u in users if u["role"] in roles]
            if external_id:
                users = [u for u in users if str(u["external_id"] or "").lower() == external_id.lower()]
            return self._json(self._paginate("users", users, self._render_user))

    @route("/users/<int:user_id>", "GET")
    def _show_user(self, user_id: int) -> Response:
        with self._lock:
            return self._json({"user": self._render_user(self._user_or_404(user_id))})

    @route("/users/show_many", "GET")
    def _show_many_users(self) -> Response:
        with self._lock:
            if request.args.get("external_ids"):
                wanted = [v.lower() for v in self._id_list("external_ids")]
                ids = [self._user_external_index[v] for v in wanted if v in self._user_external_index]
            else:
                ids = self._int_ids("ids", required=True)
            users = [self._render_user(self._users[i]) for i in ids if i in self._users]
            return self._json({"users": users})

    @route("/users/search", "GET")
    def _search_users(self) -> Response:
        query = (request.args.get("query") or "").strip()
        external_id = request.args.get("external_id")
        with self._lock:
            if external_id:
                found = self._user_external_index.get(external_id.lower())
                users = [self._users[found]] if found else []
            elif query:
                users = [
                    u for u in sorted(self._users.values(), key=lambda u: u["id"]) if _user_matches(u, query)
                ]
            else:
                raise bad_request("ParameterMissing", "Provide query or external_id")
            page = self._paginate("users", users, self._render_user, cursor_default=False)
            return self._json(page)

    @route("/users", "POST")
    def _create_user_view(self) -> Response:
        data = self._wrapped(self._body(), "user")
        with self._lock:
            user = self._create_user(data)
            rendered = self._render_user(user)
        return self._json({"user": rendered}, 201, {"Location": rendered["url"]})

    @route("/users/<int:user_id>", "PUT")
    def _update_user_view(self, user_id: int) -> Response:
        data = self._wrapped(self._body(), "user")
        with self._lock:
            user = self._update_user(self._user_or_404(user_id), data)
            return self._json({"user": self._render_user(user)})

    @route("/users/<int:user_id>", "DELETE")
    def _delete_user_view(self, user_id: int) -> Response:
        """Soft delete (spec): the user answers with ``active: false`` from then on, in reads and in the
        incremental export (recorded: 760 of 1,000 users of one export page)."""
        with self._lock:
            user = self._user_or_404(user_id)
            if user["id"] == self.api_user_id:
                raise ZendeskError(403, {"error": "Forbidden", "description": "You cannot delete yourself"})
            if user["active"]:
                user["active"] = False
                self._touch(user)
            return self._json({"user": self._render_user(user)})

    @route("/users/create_or_update", "POST")
    def _create_or_update_user(self) -> Response:
        data = self._wrapped(self._body(), "user")
        with self._lock:
            existing = self._match_user(data)
            if existing is not None:
                user = self._update_user(existing, data)
                status = 200
            else:
                user = self._create_user(data)
                status = 201
            rendered = self._render_user(user)
        return self._json({"user": rendered}, status, {"Location": rendered["url"]})

    # -- organizations -----------------------------------------------------------------------------

    def _org_or_404(self, org_id: int) -> dict[str, Any]:
        org = self._orgs.get(org_id)
        if org is None:
            raise not_found()
        return org

    @route("/organizations", "GET")
    def _list_orgs(self) -> Response:
        with self._lock:
            orgs = sorted(self._orgs.values(), key=lambda o: o["id"])
            return self._json(self._paginate("organizations", orgs, self._render_org))

    @route("/organizations/<int:organization_id>", "GET")
    def _show_org(self, organization_id: int) -> Response:
        with self._lock:
            return self._json({"organization": self._render_org(self._org_or_404(organization_id))})

    @route("/organizations/show_many", "GET")
    def _show_many_orgs(self) -> Response:
        with self._lock:
            if request.args.get("external_ids"):
                wanted = [v.lower() for v in self._id_list("external_ids")]
                ids = [self._org_external_index[v] for v in wanted if v in self._org_external_index]
            else:
                ids = self._int_ids("ids", required=True)
            orgs = [self._render_org(self._orgs[i]) for i in ids if i in self._orgs]
            return self._json({"organizations": orgs})

    @route("/organizations/search", "GET")
    def _search_orgs(self) -> Response:
        external_id = request.args.get("external_id")
        name = request.args.get("name")
        with self._lock:
            if external_id:
                found = self._org_external_index.get(external_id.lower())
            elif name:
                found = self._org_name_index.get(name.lower())
            else:
                raise bad_request("ParameterMissing", "Provide external_id or name")
            orgs = [self._render_org(self._orgs[found])] if found else []
            return self._json(
                {"organizations": orgs, "count": len(orgs), "next_page": None, "previous_page": None}
            )

    @route("/organizations", "POST")
    def _create_org_view(self) -> Response:
        data = self._wrapped(self._body(), "organization")
        with self._lock:
            rendered = self._render_org(self._create_org(data))
        return self._json({"organization": rendered}, 201, {"Location": rendered["url"]})

    @route("/organizations/<int:organization_id>", "PUT")
    def _update_org_view(self, organization_id: int) -> Response:
        data = self._wrapped(self._body(), "organization")
        with self._lock:
            org = self._update_org(self._org_or_404(organization_id), data)
            return self._json({"organization": self._render_org(org)})

    @route("/organizations/create_or_update", "POST")
    def _create_or_update_org(self) -> Response:
        data = self._wrapped(self._body(), "organization")
        with self._lock:
            existing = None
            if data.get("id") is not None:
                try:
                    existing = self._orgs.get(as_int(data["id"]))
                except ValueError:
                    existing = None
            elif data.get("external_id") is not None:
                found = self._org_external_index.get(str(data["external_id"]).lower())
                existing = self._orgs.get(found) if found else None
            if existing is not None:
                org, status = self._update_org(existing, data), 200
            else:
                org, status = self._create_org(data), 201
            rendered = self._render_org(org)
        return self._json({"organization": rendered}, status, {"Location": rendered["url"]})

    # -- groups ------------------------------------------------------------------------------------

    def _group_or_404(self, group_id: int) -> dict[str, Any]:
        group = self._groups.get(group_id)
        if group is None:
            raise not_found()
        return group

    @route("/groups", "GET")
    def _list_groups(self) -> Response:
        with self._lock:
            groups = sorted(self._groups.values(), key=lambda g: g["id"])
            if as_bool(request.args.get("exclude_deleted", "false")):
                groups = [g for g in groups if not g["deleted"]]
            return self._json(self._paginate("groups", groups, self._render_group))

    @route("/groups/<int:group_id>", "GET")
    def _show_group(self, group_id: int) -> Response:
        with self._lock:
            return self._json({"group": self._render_group(self._group_or_404(group_id))})

    @route("/groups", "POST")
    def _create_group_view(self) -> Response:
        data = self._wrapped(self._body(), "group")
        with self._lock:
            changes = self._group_changes(data, None)
            group = self.add_group(changes.pop("name"), created_at=self._stamp())
            self._groups[group["id"]].update(changes)
            rendered = self._render_group(self._groups[group["id"]])
        return self._json({"group": rendered}, 201, {"Location": rendered["url"]})

    @route("/groups/<int:group_id>", "PUT")
    def _update_group_view(self, group_id: int) -> Response:
        data = self._wrapped(self._body(), "group")
        with self._lock:
            group = self._group_or_404(group_id)
            changes = self._group_changes(data, group)
            if any(group.get(k) != v for k, v in changes.items()):
                group.update(changes)
                self._touch(group)
            return self._json({"group": self._render_group(group)})


def _user_matches(user: Mapping[str, Any], query: str) -> bool:
    """A small slice of Zendesk's search syntax: field:value terms and bare words, all must match."""
    for term in query.split():
        if ":" in term:
            field, _, value = term.partition(":")
            value = value.strip('"').lower()
            if field == "email":
                if (user.get("email") or "").lower() != value:
                    return False
            elif field in ("external_id", "organization_id", "role", "name", "id"):
                if str(user.get(field) or "").lower() != value:
                    return False
            elif field == "tags":
                if value not in user.get("tags", []):
                    return False
            else:
                return False
        else:
            word = term.lower()
            if word not in (user.get("name") or "").lower() and word not in (user.get("email") or "").lower():
                return False
    return True

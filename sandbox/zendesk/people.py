"""Zendesk users, organizations and groups: validating a payload into changes and writing them.

Shared by the API's views (routes/people.py, routes/jobs.py) and by ticket creation, which may create a
requester on the way.
"""

from __future__ import annotations

from collections.abc import Mapping
from copy import deepcopy
from typing import Any

from sandbox.zendesk.common import USER_ROLES, Details, as_bool, as_int, normalize_tags
from sandbox.zendesk.state import ZendeskState


class ZendeskPeople(ZendeskState):
    """The account's people and their validation."""

    # -- shared validation -------------------------------------------------------------------------

    @staticmethod
    def _ref(
        details: Details, value: Any, field: str, table: Mapping[int, Any], label: str = ""
    ) -> int | None:
        """A nullable reference to an existing record; unknown ids are a 422 naming the field."""
        if value is None or value == "":
            return None
        label = label or field.removesuffix("_id").replace("_", " ").capitalize()
        try:
            ref = as_int(value)
        except ValueError:
            details.add(field, f"{label}: {value!r} is not a valid id")
            return None
        record = table.get(ref)
        if record is None or record.get("deleted"):
            details.add(field, f"{label}: {ref} does not exist (invalid {field})")
            return None
        return ref

    @staticmethod
    def _tag_changes(data: Mapping[str, Any], current: list[str], details: Details) -> list[str] | None:
        """tags replaces the list; additional_tags and remove_tags add and remove without replacing."""
        if not any(k in data for k in ("tags", "additional_tags", "remove_tags")):
            return None
        tags = list(current)
        try:
            if "tags" in data:
                tags = normalize_tags(data["tags"])
            if "additional_tags" in data:
                tags += [t for t in normalize_tags(data["additional_tags"]) if t not in tags]
            if "remove_tags" in data:
                removed = set(normalize_tags(data["remove_tags"]))
                tags = [t for t in tags if t not in removed]
        except ValueError as e:
            details.add("tags", f"Tags: {e}")
            return None
        return tags

    # -- users -------------------------------------------------------------------------------------

    def _user_changes(
        self, data: Mapping[str, Any], user: Mapping[str, Any] | None, details: Details
    ) -> dict[str, Any]:
        """Validate a user payload into field changes; problems go to `details`."""
        changes: dict[str, Any] = {}
        if "name" in data or user is None:
            name = data.get("name")
            if not isinstance(name, str) or not name.strip():
                details.add("name", "Name: is too short (minimum one character)", "BlankValue")
            else:
                changes["name"] = name.strip()
        if "email" in data:
            email = data["email"]
            if email is None or email == "":
                changes["email"] = None
            elif not isinstance(email, str) or "@" not in email:
                details.add("email", f"Email: {email} is not properly formatted", "InvalidFormat")
            else:
                owner = self._email_index.get(email.lower())
                if owner is not None and (user is None or owner != user["id"]):
                    details.add(
                        "email", f"Email: {email} is already being used by another user", "DuplicateValue"
                    )
                changes["email"] = email.lower()
        if "role" in data:
            if data["role"] not in USER_ROLES:
                details.add("role", f"Role: {data['role']} is not valid", "InvalidValue")
            else:
                changes["role"] = data["role"]
        if "organization_id" in data:
            changes["organization_id"] = self._ref(
                details, data["organization_id"], "organization_id", self._orgs
            )
        if isinstance(data.get("organization"), dict) and "organization_id" not in data:
            org_name = data["organization"].get("name")
            if isinstance(org_name, str) and org_name.strip():
                changes["_organization_name"] = org_name.strip()
        if "default_group_id" in data:
            changes["default_group_id"] = self._ref(
                details, data["default_group_id"], "default_group_id", self._groups
            )
        if "external_id" in data:
            ext = data["external_id"]
            if ext is not None and not isinstance(ext, str | int):
                details.add("external_id", "External ID: is invalid")
            elif ext is not None:
                owner = self._user_external_index.get(str(ext).lower())
                if owner is not None and (user is None or owner != user["id"]):
                    details.add("external_id", f"External ID: {ext} has already been taken", "DuplicateValue")
                changes["external_id"] = str(ext)
            else:
                changes["external_id"] = None
        tags = self._tag_changes(data, list(user["tags"]) if user else [], details)
        if tags is not None:
            changes["tags"] = tags
        if "user_fields" in data:
            fields = data["user_fields"]
            if not isinstance(fields, dict):
                details.add("user_fields", "User fields: must be an object")
            else:
                merged = dict(user["user_fields"]) if user else {}
                merged.update(fields)
                changes["user_fields"] = merged
        for key in ("time_zone", "locale", "phone", "notes", "details", "alias", "signature"):
            if key in data:
                changes[key] = data[key]
        for key in ("verified", "suspended", "moderator", "only_private_comments", "shared_phone_number"):
            if key in data:
                changes[key] = as_bool(data[key])
        return changes

    def _apply_user_changes(self, user: dict[str, Any], changes: Mapping[str, Any]) -> bool:
        org_name = changes.get("_organization_name")
        if org_name:
            org_id = self._org_name_index.get(org_name.lower())
            if org_id is None:
                org_id = self.add_organization(org_name)["id"]
            changes = {**changes, "organization_id": org_id}
        changed = False
        self._unindex_user(user)
        for key, value in changes.items():
            if key.startswith("_"):
                continue
            if user.get(key) != value:
                user[key] = deepcopy(value)
                changed = True
        if "role" in changes:
            self._fit_role(user)
        self._index_user(user)
        return changed

    def _create_user(self, data: Mapping[str, Any]) -> dict[str, Any]:
        details = Details()
        changes = self._user_changes(data, None, details)
        details.raise_if_any()
        now = self._stamp()
        user = self._new_user(next(self._user_ids), now)
        self._users[user["id"]] = user
        self._apply_user_changes(user, changes)
        return user

    def _update_user(self, user: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        details = Details()
        changes = self._user_changes(data, user, details)
        details.raise_if_any()
        if self._apply_user_changes(user, changes):
            self._touch(user)
        return user

    def _match_user(self, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """create_or_update identifies a user by id, external_id or email (never by name)."""
        if data.get("id") is not None:
            try:
                return self._users.get(as_int(data["id"]))
            except ValueError:
                return None
        if data.get("external_id") is not None:
            found = self._user_external_index.get(str(data["external_id"]).lower())
            if found is not None:
                return self._users[found]
        if isinstance(data.get("email"), str):
            found = self._email_index.get(data["email"].lower())
            if found is not None:
                return self._users[found]
        return None

    # -- organizations -----------------------------------------------------------------------------

    def _org_changes(
        self, data: Mapping[str, Any], org: Mapping[str, Any] | None, details: Details
    ) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if "name" in data or org is None:
            name = data.get("name")
            if not isinstance(name, str) or not name.strip():
                details.add("name", "Name: cannot be blank", "BlankValue")
            else:
                owner = self._org_name_index.get(name.strip().lower())
                if owner is not None and (org is None or owner != org["id"]):
                    details.add("name", f"Name: {name} has already been taken", "DuplicateValue")
                changes["name"] = name.strip()
        if "domain_names" in data:
            domains = data["domain_names"]
            if isinstance(domains, str):
                domains = domains.split()
            if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
                details.add("domain_names", "Domain names: must be a list of strings")
            else:
                changes["domain_names"] = [d.lower() for d in domains]
        if "external_id" in data:
            ext = data["external_id"]
            if ext is not None:
                owner = self._org_external_index.get(str(ext).lower())
                if owner is not None and (org is None or owner != org["id"]):
                    details.add("external_id", f"External ID: {ext} has already been taken", "DuplicateValue")
                changes["external_id"] = str(ext)
            else:
                changes["external_id"] = None
        if "group_id" in data:
            changes["group_id"] = self._ref(details, data["group_id"], "group_id", self._groups)
        tags = self._tag_changes(data, list(org["tags"]) if org else [], details)
        if tags is not None:
            changes["tags"] = tags
        if "organization_fields" in data:
            fields = data["organization_fields"]
            if not isinstance(fields, dict):
                details.add("organization_fields", "Organization fields: must be an object")
            else:
                merged = dict(org["organization_fields"]) if org else {}
                merged.update(fields)
                changes["organization_fields"] = merged
        for key in ("notes", "details"):
            if key in data:
                changes[key] = data[key]
        for key in ("shared_tickets", "shared_comments"):
            if key in data:
                changes[key] = as_bool(data[key])
        return changes

    def _apply_org_changes(self, org: dict[str, Any], changes: Mapping[str, Any]) -> bool:
        changed = False
        self._unindex_org(org)
        for key, value in changes.items():
            if org.get(key) != value:
                org[key] = deepcopy(value)
                changed = True
        self._index_org(org)
        return changed

    def _create_org(self, data: Mapping[str, Any]) -> dict[str, Any]:
        details = Details()
        changes = self._org_changes(data, None, details)
        details.raise_if_any()
        org = self._new_org(next(self._org_ids), self._stamp())
        self._apply_org_changes(org, changes)
        self._orgs[org["id"]] = org
        return org

    def _update_org(self, org: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        details = Details()
        changes = self._org_changes(data, org, details)
        details.raise_if_any()
        if self._apply_org_changes(org, changes):
            self._touch(org)
        return org

    # -- groups ------------------------------------------------------------------------------------

    def _group_changes(self, data: Mapping[str, Any], group: Mapping[str, Any] | None) -> dict[str, Any]:
        details = Details()
        changes: dict[str, Any] = {}
        if "name" in data or group is None:
            name = data.get("name")
            if not isinstance(name, str) or not name.strip():
                details.add("name", "Name: cannot be blank", "BlankValue")
            else:
                changes["name"] = name.strip()
        if "description" in data:
            changes["description"] = data["description"] or ""
        if "is_public" in data:
            changes["is_public"] = as_bool(data["is_public"])
        details.raise_if_any()
        return changes

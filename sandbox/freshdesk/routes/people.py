"""Freshdesk's agents, groups, contacts and companies API."""

from __future__ import annotations

from collections.abc import Mapping
from copy import deepcopy
from typing import Any

from flask import Response, request

from sandbox.base import route
from sandbox.freshdesk.common import (
    COMPANY_FIELDS,
    CONTACT_FIELDS,
    CONTACT_LIST_OMITS,
    Errors,
    merge_tags,
    not_found,
    validation_error,
)
from sandbox.freshdesk.routes.http import FreshdeskHttp


class PeopleRoutes(FreshdeskHttp):
    """/agents/me, /groups, /contacts and /companies."""

    # -- agents and groups -------------------------------------------------------------------------

    @route("/agents/me", "GET")
    def _agents_me(self) -> Response:
        with self._lock:
            return self._json(self._render(self._agents[self.api_agent_id]))

    @route("/groups", "GET")
    def _list_groups(self) -> Response:
        with self._lock:
            groups = sorted(self._groups.values(), key=lambda g: g["id"])
            return self._paginate(groups, self._render)

    @route("/groups/<int:group_id>", "GET")
    def _show_group(self, group_id: int) -> Response:
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                raise not_found()
            return self._json(self._render(group))

    # -- contacts ----------------------------------------------------------------------------------

    def _contact_or_404(self, contact_id: int) -> dict[str, Any]:
        contact = self._contacts.get(contact_id)
        if contact is None:
            raise not_found()
        return contact

    @route("/contacts", "GET")
    def _list_contacts(self) -> Response:
        since = self._since("_updated_since")
        company_id = self._int_filter("company_id")
        email = (request.args.get("email") or "").lower() or None
        state = request.args.get("state")
        if state not in (None, "", "verified", "unverified", "blocked", "deleted"):
            raise validation_error(
                "state", "It should be one of these values: 'blocked,deleted,unverified,verified'"
            )
        with self._lock:
            contacts = sorted(self._contacts.values(), key=lambda c: c["id"])
            wanted = [
                c
                for c in contacts
                if (c["deleted"] if state == "deleted" else not c["deleted"])
                and (since is None or c["updated_at"] >= since)
                and (company_id is None or c["company_id"] == company_id)
                and (email is None or c["email"] == email)
            ]
            return self._paginate(wanted, self._render_list_contact)

    @classmethod
    def _render_list_contact(cls, contact: Mapping[str, Any]) -> dict[str, Any]:
        """A contact as the list shows it: without the fields only its own record has (docs)."""
        return {k: v for k, v in cls._render(contact).items() if k not in CONTACT_LIST_OMITS}

    @route("/contacts/<int:contact_id>", "GET")
    def _show_contact(self, contact_id: int) -> Response:
        with self._lock:
            return self._json(self._render(self._contact_or_404(contact_id)))

    def _contact_changes(self, data: Mapping[str, Any], contact: Mapping[str, Any] | None) -> dict[str, Any]:
        errors = Errors()
        if contact is None:
            if not isinstance(data.get("name"), str) or not data["name"].strip():
                errors.add("name", "It should be a/an String", "missing_field")
            if not any(data.get(k) for k in ("email", "phone", "mobile", "twitter_id", "unique_external_id")):
                errors.add(
                    "requester_id",
                    "Please fill at least 1 of email, mobile, phone, twitter_id, unique_external_id fields",
                    "missing_field",
                )
        email = data.get("email")
        if email is not None:
            if not isinstance(email, str) or "@" not in email:
                errors.add("email", "It should be in the 'valid email address' format")
            else:
                owner = self._email_index.get(email.lower())
                if owner is not None and (contact is None or owner != contact["id"]):
                    errors.add("email", "It should be a unique value", "duplicate_value")
        self._ref(errors, data, "company_id", self._companies)
        self._string_list(errors, data, "tags")
        self._custom_fields(errors, data)
        errors.raise_if_any()
        changes = {k: deepcopy(v) for k, v in data.items() if k != "custom_fields"}
        if "email" in changes and changes["email"]:
            changes["email"] = changes["email"].lower()
        if "tags" in changes:
            changes["tags"] = merge_tags(changes["tags"])  # replaces the whole list, like Freshdesk
        if "custom_fields" in data:
            merged = dict(contact["custom_fields"]) if contact else {}
            merged.update(data["custom_fields"])
            changes["custom_fields"] = merged
        return changes

    @route("/contacts", "POST")
    def _create_contact_view(self) -> Response:
        data = self._body(CONTACT_FIELDS)
        with self._lock:
            changes = self._contact_changes(data, None)
            contact = self._new_contact(next(self._contact_ids), self._stamp())
            contact.update(changes)
            self._contacts[contact["id"]] = contact
            if contact["email"]:
                self._email_index[contact["email"]] = contact["id"]
            return self._json(self._render(contact), 201)

    @route("/contacts/<int:contact_id>", "PUT")
    def _update_contact_view(self, contact_id: int) -> Response:
        data = self._body(CONTACT_FIELDS)
        with self._lock:
            contact = self._contact_or_404(contact_id)
            changes = self._contact_changes(data, contact)
            if any(contact.get(k) != v for k, v in changes.items()):
                if "email" in changes and contact["email"]:
                    self._email_index.pop(contact["email"], None)
                contact.update(changes)
                if contact["email"]:
                    self._email_index[contact["email"]] = contact["id"]
                contact["updated_at"] = self._stamp(contact["updated_at"])
            return self._json(self._render(contact))

    # -- companies ---------------------------------------------------------------------------------

    def _company_or_404(self, company_id: int) -> dict[str, Any]:
        company = self._companies.get(company_id)
        if company is None:
            raise not_found()
        return company

    @route("/companies", "GET")
    def _list_companies(self) -> Response:
        with self._lock:
            companies = sorted(self._companies.values(), key=lambda c: c["id"])
            return self._paginate(companies, self._render)

    @route("/companies/<int:company_id>", "GET")
    def _show_company(self, company_id: int) -> Response:
        with self._lock:
            return self._json(self._render(self._company_or_404(company_id)))

    @route("/companies/<int:company_id>", "PUT")
    def _update_company_view(self, company_id: int) -> Response:
        data = self._body(COMPANY_FIELDS)
        with self._lock:
            company = self._company_or_404(company_id)
            errors = Errors()
            if "name" in data and (not isinstance(data["name"], str) or not data["name"].strip()):
                errors.add("name", "It should be a/an String", "datatype_mismatch")
            self._string_list(errors, data, "domains")
            self._custom_fields(errors, data)
            errors.raise_if_any()
            changes = {k: deepcopy(v) for k, v in data.items() if k != "custom_fields"}
            if "custom_fields" in data:
                changes["custom_fields"] = {**company["custom_fields"], **data["custom_fields"]}
            if any(company.get(k) != v for k, v in changes.items()):
                company.update(changes)
                company["updated_at"] = self._stamp(company["updated_at"])
            return self._json(self._render(company))

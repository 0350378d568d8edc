"""ZendeskSandbox: the in-memory account (state.py and the operations over it) with every API area's
routes (routes/) served on one Flask app."""

from __future__ import annotations

from sandbox.base import Route
from sandbox.zendesk.routes.exports import ExportRoutes
from sandbox.zendesk.routes.jobs import JobRoutes
from sandbox.zendesk.routes.people import PeopleRoutes
from sandbox.zendesk.routes.tickets import TicketRoutes
from sandbox.zendesk.routes.triggers import TriggerRoutes
from sandbox.zendesk.routes.webhooks import WebhookRoutes


class ZendeskSandbox(PeopleRoutes, TicketRoutes, ExportRoutes, JobRoutes, WebhookRoutes, TriggerRoutes):
    """In-memory Zendesk account with an HTTP face; see the package docstring for why."""

    def _api_routes(self) -> list[Route]:
        return [
            *self._user_routes(),
            *self._organization_routes(),
            *self._group_routes(),
            *self._ticket_routes(),
            *self._ticket_part_routes(),
            *self._export_routes(),
            *self._job_routes(),
            *self._webhook_routes(),
            *self._trigger_routes(),
            *self._sla_routes(),
        ]

    def _sandbox_routes(self) -> list[Route]:
        return [("/tickets", "POST", self._control_submit_ticket)]

"""ZendeskSandbox: the in-memory account (state.py and the operations over it) with every API area's
routes (routes/) served on one Flask app."""

from __future__ import annotations

from sandbox.zendesk.routes.exports import ExportRoutes
from sandbox.zendesk.routes.jobs import JobRoutes
from sandbox.zendesk.routes.people import PeopleRoutes
from sandbox.zendesk.routes.tickets import TicketRoutes
from sandbox.zendesk.routes.triggers import TriggerRoutes
from sandbox.zendesk.routes.webhooks import WebhookRoutes


class ZendeskSandbox(PeopleRoutes, TicketRoutes, ExportRoutes, JobRoutes, WebhookRoutes, TriggerRoutes):
    """In-memory Zendesk account with an HTTP face; see the package docstring for why."""

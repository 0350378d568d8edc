"""FreshdeskSandbox: the in-memory account (state.py and the operations over it) with every API area's
routes (routes/) served on one Flask app."""

from __future__ import annotations

from sandbox.freshdesk.routes.control import ControlRoutes
from sandbox.freshdesk.routes.people import PeopleRoutes
from sandbox.freshdesk.routes.tickets import TicketRoutes


class FreshdeskSandbox(PeopleRoutes, TicketRoutes, ControlRoutes):
    """In-memory Freshdesk account with an HTTP face; see the package docstring for why."""

"""HubSpotSandbox: the in-memory portal (state.py) with every API area's routes (routes/) on one app."""

from __future__ import annotations

from sandbox.hubspot.routes.objects import ObjectRoutes
from sandbox.hubspot.routes.properties import PropertyRoutes
from sandbox.hubspot.routes.search import SearchRoutes


class HubSpotSandbox(ObjectRoutes, SearchRoutes, PropertyRoutes):
    """An in-memory HubSpot portal with an HTTP face; the package docstring says what it serves."""

"""The admin: server-rendered pages under /admin and a JSON API under /api, both behind sign-in.

Admins are tierdesk's second group of users: they edit, preview, simulate and publish the mapping, ask
why a ticket was routed the way it was, watch segments and the service each segment gets, and replay
dead events. Pages (``pages.bp``) take a password and keep a session cookie; the API (``api.bp``) takes a
bearer token. The work both share lives in ``mappings`` (versions), ``whatif`` (preview and simulate)
and ``reports`` (decisions, segments, service, queue), so the two faces never disagree.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Hook sessions and both blueprints into the app; create_app calls this after the runtime is set."""
    # mapping_pages and report_pages put their routes on pages.bp when imported, before it is registered
    from integration.web.admin import api, auth, mapping_pages, pages, report_pages  # noqa: F401

    auth.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)

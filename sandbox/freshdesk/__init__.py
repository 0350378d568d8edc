"""A local, API-compatible stand-in for the Freshdesk API v2, served over loopback HTTP.

Why it exists: tierdesk's tests and its Freshdesk demo must drive the real HTTP paths of the Freshdesk
connector (API-key basic auth, page/per_page lists with a Link header, tag replacement on PUT, private
notes, due dates, rate limits, webhooks fired by an automation rule) without a Freshdesk account. Freshdesk
publishes no OpenAPI description; paths, field names, integer enumerations and error bodies follow its API
documentation (see shared/reference/helpdesk-apis.md, section 2). Use it from Python
(``FreshdeskSandbox().start()``) or on its own::

    python -m sandbox.freshdesk --port 8766 --customers 1000 --seed 42

Everything lives in memory behind one re-entrant lock; webhook deliveries run on a small thread pool so
the ticket-create call returns before the webhook is sent, as Freshdesk's does.

Behaviour worth knowing (docs = Freshdesk's documentation; choice = ours where it is silent):
- Auth (docs): HTTP Basic with the API key as the username and any password ("X"); anything else is 401.
- Bodies are unwrapped JSON (docs): ``{"subject": ...}``, not ``{"ticket": {...}}``. Writes need
  ``Content-Type: application/json`` (else 415) and refuse fields the endpoint does not know (400
  ``invalid_field``), as Freshdesk does. Validation errors answer 400 ``{"description": "Validation
  failed", "errors": [{"field", "message", "code"}]}``; a duplicate contact email is 409 (docs).
- Enumerations (docs): priority 1 low, 2 medium, 3 high, 4 urgent; status 2 open, 3 pending, 4 resolved,
  5 closed; source 1 email, 2 portal, 3 phone, 7 chat, 9 feedback widget, 10 outbound email.
- Lists (docs): ``page`` from 1 and ``per_page`` up to 100 (default 30); a ``Link: <...>; rel="next"``
  header while more pages exist, none on the last page. The ticket list without ``updated_since`` shows
  only tickets created in the last 30 days (docs) and refuses pages beyond 300 (choice: Freshdesk caps
  deep paging at about that depth). Contacts are listed by id (choice; Freshdesk documents no order) and
  filter with ``_updated_since``; companies have no change filter (docs). A contact's list row leaves out
  ``tags``, ``avatar``, ``other_emails``, ``deleted``, ``other_companies`` and ``view_all_tickets``, which
  only GET /contacts/{id} shows (Freshdesk's API views and tests).
- ``tags`` on a ticket or contact update REPLACES the whole list (docs); ``custom_fields`` merge by key.
  Tags keep their spelling and are deduplicated ignoring case (choice).
- Due dates: a new ticket gets ``fr_due_by``/``due_by`` from the account's default SLA policy by priority
  (calendar time, choice of targets below); a priority change recomputes them unless the same update sets
  them explicitly. ``due_by`` before the ticket's creation or ``fr_due_by`` after ``due_by`` is a 400.
- Notes (docs): POST /tickets/{id}/notes with ``{"body": "<html>", "private": true}``; ``private``
  defaults to true. A note moves the ticket's ``updated_at``. GET /tickets/{id}?include=conversations
  embeds the oldest ten conversations (docs); /tickets/{id}/conversations lists them all.
- Unknown ids and unknown paths answer 404 with an empty body (choice).
- Rate limits (docs): every API answer carries X-RateLimit-Total, X-RateLimit-Remaining and
  X-RateLimit-Used-CurrentRequest; over the per-minute budget, 429 with Retry-After (seconds). Each
  ``include`` costs one more credit (docs). The plan's Ticket Update cap (docs: 80/160/280 a minute on
  Growth/Pro/Enterprise) is off unless ``endpoint_limits=True`` (or overrides, ``--endpoint-limits``,
  POST /__sandbox/endpoint_limits); on a ticket update the X-RateLimit-* headers then show the budget
  with less left, the cap on its 429 (choice: Freshdesk documents no header of the cap's own).
- Webhooks: Freshdesk has no webhook API; an admin adds a "Trigger webhook" action to an automation rule.
  Here ``add_automation_rule`` (or POST /__sandbox/automations) configures one "on ticket created" rule:
  URL, method, JSON template with {{placeholders}}, custom headers, basic auth or an API key. Deliveries
  are unsigned (docs), asynchronous, and retried three times on connection errors and 5xx (choice).
  Placeholders render display values ({{ticket.priority}} -> "High", {{ticket.status}} -> "Open");
  {{ticket.tags}} renders comma-separated; unknown placeholders render "" (choice); values are
  JSON-escaped in JSON templates (choice). Only tickets created through the API or the portal
  (``submit_ticket``) fire rules; seeded history does not.

Layout (each layer builds on the one before; seed.py and __main__.py import the sandbox, never the reverse):
- common.py: constants, pure helpers, error shapes.
- state.py: the account in memory (records, ids, validation, rendering, direct access for seeding and tests).
- rules.py, tickets.py: the operations: automation rules and their webhooks, tickets and notes.
- routes/: the API by area (people, tickets) and the /__sandbox/ controls, each view marked @route or
  @control; routes/http.py holds auth, rate-limit credits, error bodies, request parsing and lists.
- server.py: FreshdeskSandbox, all of it on one app. seed.py: synthetic data. __main__.py: the CLI.
"""

from sandbox.freshdesk.common import FreshdeskError, html_text, iso, merge_tags, note_html, parse_time
from sandbox.freshdesk.server import FreshdeskSandbox

__all__ = ["FreshdeskError", "FreshdeskSandbox", "html_text", "iso", "merge_tags", "note_html", "parse_time"]

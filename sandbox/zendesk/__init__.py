"""A local, API-compatible stand-in for the Zendesk Support API, served over loopback HTTP.

Why it exists: tierdesk's tests and demo must drive the real HTTP paths of the Zendesk connector (token auth,
cursor pagination, incremental exports, bulk jobs, tag semantics, safe updates, rate limits, signed trigger
webhooks) without a Zendesk account. Paths, body wrappers, field names and error bodies follow Zendesk's
official OpenAPI description (shared/specs/zendesk); where that description is silent we follow Zendesk's
documentation. Use it from Python (``ZendeskSandbox().start()``) or on its own::

    python -m sandbox.zendesk --port 8765 --customers 1000 --seed 42

Everything lives in memory behind one re-entrant lock; webhook deliveries and bulk jobs run on small
thread pools so API calls return as quickly as Zendesk's do.

Behaviour worth knowing (spec = the OpenAPI subset; choice = ours where Zendesk's is unknown or unstated):
- Tags are lowercased, deduplicated in first-seen order, and split on whitespace (Zendesk stores them
  space-joined). ``tags`` replaces, ``additional_tags``/``remove_tags`` add/remove (ticket, user and
  organization updates, single and bulk). /tickets/{id}/tags: POST sets (201), PUT adds (200), DELETE
  removes (204), per the spec.
- safe_update (spec): a present ``safe_update`` -- true *or false* -- with an ``updated_stamp`` that is not
  the ticket's updated_at gives 409. updated_at only moves when an update changes something (spec: "updated
  only if the update generates a ticket event"); a change within the same second still gets a new stamp.
- A comment's ``public`` defaults to the first comment's value (spec), so true unless the ticket opened
  with an internal note. Closed tickets refuse updates with 422 (Zendesk behaviour).
- Lists use cursor pagination (meta/links) unless ``?page=N`` asks for offset pagination; page[size] above
  100 is a 400 (choice). Triggers and SLA policies list offset-style, as the spec's schemas show.
- Incremental exports order by updated_at, then by the order the changes happened; cursors encode that
  position, so polling with an old after_cursor returns exactly the later changes. Time-based exports
  always give a next_page (spec example): stop on end_of_stream.
- Trigger placeholders render Zendesk's display values ({{ticket.status}} -> "Open", {{ticket.priority}}
  -> "High"); empty values render "". For JSON webhooks each value is JSON-escaped so a quote in a subject
  cannot break the body (choice). The acting user of API calls is the API agent; ``submit_ticket`` (and
  POST /__sandbox/tickets) opens a ticket as its end-user requester via the web channel.
- The Webhooks API answers PUT/PATCH/DELETE with 204 and a signing-secret reset with 201, and reports
  errors as {"errors": [{"code", "title"}]}, like Zendesk's newer APIs (choice where unverified).
- Reopens (solved -> unsolved) are tracked per ticket but, as in Zendesk, are not a ticket field:
  read them with ``ticket_reopens``.
- Deletes are soft, as Zendesk's: a deleted user stays readable with ``active: false``; a deleted ticket
  (204) answers 404 to reads and writes but stays in the incremental export with status "deleted".
- Endpoint rate limits (docs; off unless ``endpoint_limits=True``, a dict of overrides such as
  ``{"update_ticket": (3, 2.0)}`` = 3 per 2 s, ``--endpoint-limits``, or POST /__sandbox/endpoint_limits):
  Update Ticket 100 a minute per account (300 with ``high_volume=True``), a single update and an
  update_many counting one each (choice); 30 updates per ticket per user per 10 minutes; incremental
  exports 10 a minute (30 high volume); Update Organization 5 a minute. Over one: 429 with Retry-After,
  and every answer of a limited endpoint carries ``zendesk-ratelimit-<budget>: total=; remaining=;
  resets=`` (the shape Zendesk documents for List Tickets' own budget; why: routes/http.py).
- Bulk job results, as recorded from Zendesk (shared/recordings/zendesk): a written record is
  ``{"id", "action", "status", "success": true}``; a failed one is ``{"index", "error", "id", "details"}``
  with no ``success`` key (an organizations update_many answered 99 of its 100 records so).

Layout (each layer builds on the one before; seed.py and __main__.py import the sandbox, never the reverse):
- common.py: constants, pure helpers, error shapes.
- state.py: the account in memory (records, ids, indexes, rendering, direct access for seeding and tests).
- people.py, rules.py, tickets.py: the operations: users/organizations/groups, triggers and SLA policies
  at work (with signed webhook delivery), tickets and comments.
- routes/: the API by area (people, tickets, jobs, exports, webhooks, triggers), each view marked @route;
  routes/http.py holds auth, rate limits, error bodies, request parsing and pagination.
- server.py: ZendeskSandbox, all of it on one app. seed.py: synthetic data. __main__.py: the CLI.
"""

from sandbox.zendesk.common import ZendeskError, iso, normalize_tags, parse_time
from sandbox.zendesk.server import ZendeskSandbox

__all__ = ["ZendeskError", "ZendeskSandbox", "iso", "normalize_tags", "parse_time"]

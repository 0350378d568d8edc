"""Scaffolding shared by the local API stand-ins (Zendesk, Freshdesk, HubSpot).

Each sandbox is a Flask app served by werkzeug on a daemon thread over loopback. What is the same in all
of them lives here: starting and stopping that server, the quiet request handlers, the JSON response
helper, the sliding-window rate limiter, and -- for the helpdesk sandboxes -- fault injection, response
delay, the request log, endpoint rate limits, webhook delivery bookkeeping and the sandbox-only control
routes under /__sandbox/. Everything vendor-specific (bodies, headers, status codes, auth) stays in the
vendor package.

- server.py: the werkzeug thread, the Flask app skeleton, the @route / @control marks views carry,
  `serve_until_stopped` and the arguments every `python -m sandbox.<vendor>` takes.
- limits.py: the sliding-window rate limiter behind every 429, and the named endpoint budgets (off by
  default) the helpdesk sandboxes enforce on top of the account-wide limit.
- helpdesk.py: what a helpdesk sandbox adds: faults, delays, cut responses, the request log, the clock of
  change stamps, webhook delivery with retries, and the /__sandbox/ control routes.
- formats.py: wire formats two vendors share (timestamps, stored records, template placeholders).
- people.py: the synthetic customers every helpdesk's seed draws from, so one seed gives the same people,
  and the SeedSummary a seed returns.
"""

from sandbox.base.formats import export_record, fill_placeholders, iso, parse_utc
from sandbox.base.helpdesk import (
    WEBHOOK_EXTRA_ATTEMPTS,
    WEBHOOK_METHODS,
    WEBHOOK_TIMEOUT,
    HelpdeskSandbox,
)
from sandbox.base.limits import Limit, SlidingWindow
from sandbox.base.people import SeedSummary
from sandbox.base.server import (
    CONTROL,
    KeepAliveQuietHandler,
    QuietHandler,
    Route,
    SandboxServer,
    control,
    route,
    sandbox_arguments,
    serve_until_stopped,
)

__all__ = [
    "CONTROL",
    "WEBHOOK_EXTRA_ATTEMPTS",
    "WEBHOOK_METHODS",
    "WEBHOOK_TIMEOUT",
    "HelpdeskSandbox",
    "KeepAliveQuietHandler",
    "Limit",
    "QuietHandler",
    "Route",
    "SandboxServer",
    "SeedSummary",
    "SlidingWindow",
    "control",
    "export_record",
    "fill_placeholders",
    "iso",
    "parse_utc",
    "route",
    "sandbox_arguments",
    "serve_until_stopped",
]

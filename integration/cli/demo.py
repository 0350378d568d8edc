"""`tierdesk demo`: the whole product on one machine, against a Zendesk or Freshdesk sandbox.

It does what an operator and a helpdesk would: set up the helpdesk side (Zendesk: a webhook and trigger
through its API; Freshdesk: an automation rule, which Freshdesk only lets an admin create by hand), sync
and segment the customers, then open tickets through the helpdesk's API so that it fires webhooks that
tierdesk routes. Only the setup differs per helpdesk; the run, the table and the figures are shared.
Everything talks real HTTP on loopback; nothing is faked inside tierdesk.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from werkzeug.serving import make_server

from connectors.freshdesk import AUTOMATION_BODY, SECRET_HEADER, FreshdeskConnector
from connectors.zendesk import ZendeskConnector
from integration import logs, refresh, scheduler
from integration.cli.processes import start_workers
from integration.core import keys
from integration.core.models import Ticket
from integration.runtime import Runtime
from integration.settings import Settings, SettingsError
from integration.web.app import create_app
from sandbox.freshdesk import FreshdeskSandbox
from sandbox.freshdesk.seed import seed as seed_freshdesk
from sandbox.hubspot import HubSpotSandbox
from sandbox.hubspot.seed import seed as seed_hubspot
from sandbox.zendesk import ZendeskSandbox
from sandbox.zendesk.seed import seed as seed_sandbox

SUBJECTS = [
    "Invoice shows the wrong amount",
    "Cannot log in after password reset",
    "Export to CSV times out",
    "Please cancel my subscription",
    "Feature request: dark mode",
    "Order arrived damaged",
    "API returns 500 on large uploads",
    "How do I add a team member?",
]
TICKETS_PER_SECOND = 20  # a busy support desk; the webhooks arrive as the tickets do


PRIORITY_ORDER = {"urgent": 0, "high": 1, "normal": 2, "low": 3, None: 4}
INSPECT = ("sync --status", "segment --report", "queue", "jobs")  # what needs only TIERDESK_DB


class DemoError(Exception):
    """A demo option we cannot honour: a --db that exists or cannot be made, a --port in use."""


def _port(port: int) -> int:
    """``port``, checked free (0: any free port); the webhook address must be known before we listen."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            raise DemoError(
                f"--port {port}: cannot listen on 127.0.0.1:{port} ({e.strerror or e}); "
                "choose another port, or leave --port out for any free one"
            ) from e
        return int(s.getsockname()[1])


def _database(db: str | None, cleanup: contextlib.ExitStack) -> tuple[Path, bool]:
    """Where the demo keeps its database, and whether it is temporary (its folder removed at the end).

    A --db path must be new: the demo seeds fresh sandboxes, and would otherwise mix into (or clobber)
    a database that holds something else."""
    if db is None:
        workdir = Path(tempfile.mkdtemp(prefix="tierdesk-demo-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        return workdir / "tierdesk.db", True
    path = Path(db).expanduser().absolute()
    if path.exists():
        raise DemoError(f"--db {db}: {path} exists already; the demo makes a new database: choose a new path")
    try:
        Settings(db=str(path)).check_db()
    except SettingsError as e:
        raise DemoError(str(e).replace(f"TIERDESK_DB={path}", f"--db {db}", 1)) from e
    return path, False


def pick_requesters(runtime: Runtime, source: str, count: int, rng: random.Random) -> list[str]:
    """A spread of the helpdesk's customers: round-robin over every segment so each one shows up.

    Only the helpdesk's own users can open a ticket there; CRM-only contacts are customers too, but not
    requesters."""
    own = f"{source}:"
    buckets = [
        [k for k in members if k.startswith(own)] for members in runtime.store.customers_by_segment().values()
    ]
    for members in buckets:
        rng.shuffle(members)
    chosen: list[str] = []
    while len(chosen) < count and any(buckets):
        for members in buckets:
            while members and len(chosen) < count:
                key = members.pop()
                if key not in chosen:
                    chosen.append(key)
                    break
    everyone = [c.key for c in runtime.store.iter_customers() if c.key.startswith(own)]
    rng.shuffle(everyone)
    chosen += [k for k in everyone if k not in chosen][: count - len(chosen)]
    return [keys.external_id(key) for key in chosen]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class _Admin(Protocol):
    """The helpdesk's own API user in the demo: opens tickets and reads them back as agents see them."""

    def create_ticket(self, requester_id: str, subject: str, body: str) -> Ticket: ...

    def get_ticket(self, ticket_id: str) -> Ticket: ...


@dataclass
class Helpdesk:
    """One sandboxed helpdesk, set up and ready to fire webhooks at tierdesk; the rest is shared."""

    name: str  # the connector's name: zendesk | freshdesk
    title: str  # Zendesk | Freshdesk
    settings: dict[str, Any]  # the Settings fields that point tierdesk at it
    admin: _Admin
    vip_tagged: int  # customers seeded with the "vip" tag
    fires: str  # how the helpdesk turns a new ticket into a webhook, for the narration
    stop: Callable[[], None]
    crm: dict[str, Any] | None = None  # Settings fields of a CRM sandbox whose contacts overlap this desk


def zendesk(customers: int, seed: int, endpoint: str, echo: Callable[[str], None]) -> Helpdesk:
    """Seed the Zendesk sandbox and install the webhook and "ticket created" trigger through its API."""
    box = ZendeskSandbox(email="demo@example.com", token="demo-token-not-secret")
    summary = seed_sandbox(box, customers=customers, seed=seed)
    zendesk_url = box.start()
    echo(f"Zendesk sandbox at {zendesk_url}: seeded {customers} users")
    admin = ZendeskConnector(zendesk_url, box.email, box.token)
    webhook_id, secret = admin.install_webhook(endpoint)
    echo(f"Installed webhook {webhook_id} and a 'ticket created' trigger in Zendesk")
    hub = HubSpotSandbox(token="demo-hubspot-token-not-secret")  # noqa: S106
    crm = seed_hubspot(hub, customers=customers, seed=seed, zendesk=box, customer_ids=summary.customer_ids)
    hub_url = hub.start()
    echo(
        f"HubSpot sandbox at {hub_url}: {crm.contacts} contacts, {crm.companies} companies, "
        f"{crm.won_deals} closed-won deals ({len(crm.conflict_emails)} emails on two contacts that disagree)"
    )

    def stop() -> None:
        hub.stop()
        box.stop()

    return Helpdesk(
        name="zendesk",
        title="Zendesk",
        settings={
            "zendesk_url": zendesk_url,
            "zendesk_email": box.email,
            "zendesk_token": box.token,
            "zendesk_webhook_secret": secret,
        },
        admin=admin,
        vip_tagged=len(summary.vip_tagged_emails),
        fires="Zendesk's trigger fires a signed webhook for each",
        stop=stop,
        crm={"hubspot_url": hub_url, "hubspot_token": hub.token},
    )


def freshdesk(customers: int, seed: int, endpoint: str, echo: Callable[[str], None]) -> Helpdesk:
    """Seed the Freshdesk sandbox and configure the automation rule an admin would create by hand."""
    box = FreshdeskSandbox("demo-api-key-not-secret")
    summary = seed_freshdesk(box, customers=customers, seed=seed)
    freshdesk_url = box.start()
    echo(f"Freshdesk sandbox at {freshdesk_url}: seeded {customers} contacts")
    secret = secrets.token_urlsafe(24)
    rule = box.add_automation_rule(
        endpoint, AUTOMATION_BODY, name="tierdesk: route new tickets", headers={SECRET_HEADER: secret}
    )
    echo(f"Configured automation rule {rule['id']} in Freshdesk: on ticket creation, trigger the webhook")
    return Helpdesk(
        name="freshdesk",
        title="Freshdesk",
        settings={
            "freshdesk_url": freshdesk_url,
            "freshdesk_api_key": box.api_key,
            "freshdesk_webhook_secret": secret,
            "freshdesk_rate_limit": box.rate_limit_per_minute,
        },
        admin=FreshdeskConnector(freshdesk_url, box.api_key),
        vip_tagged=len(summary.vip_tagged_emails),
        fires="Freshdesk's automation rule fires a webhook for each",
        stop=box.stop,
    )


HELPDESKS: dict[str, Callable[[int, int, str, Callable[[str], None]], Helpdesk]] = {
    "zendesk": zendesk,
    "freshdesk": freshdesk,
}


def show_scheduler(runtime: Runtime, desk: Helpdesk, routed: list[Any], echo: Callable[[str], None]) -> None:
    """The scheduler's side: segment tags pushed onto users, a customer changes, tags and ticket follow."""
    connector = runtime.connectors[desk.name]
    if desk.name != "zendesk":  # Freshdesk has no bulk contact update: 2 calls a contact, at 700 a minute
        echo("")
        echo(f"(The scheduler tags {desk.title} contacts one API write each; the demo leaves that out.)")
        return
    echo("")
    first = scheduler.refresh(runtime)[f"tags_{desk.name}"]
    echo(
        f"Scheduled sync: segment tags pushed onto {first['planned'].get('users', 0)} users and "
        f"{first['planned'].get('organizations', 0)} organizations in {first['write_calls']} update_many "
        f"calls (+{first['job_polls']} job status polls)"
    )
    # a customer whose ticket we routed at normal priority stops being profitable
    mover = next(
        (d for d in routed if d.priority == "normal" and d.segments.get("value", {}).get("label") is None),
        None,
    )
    if mover is None or mover.customer_key is None:
        return
    customer_id = keys.external_id(mover.customer_key)
    before = sorted(t for t in connector.get_customer(customer_id).tags if t.startswith("tierdesk_"))
    connector.update_customer_attributes(customer_id, {"service_cost_12m": 250_000})
    second = scheduler.refresh(runtime)
    after = sorted(t for t in connector.get_customer(customer_id).tags if t.startswith("tierdesk_"))
    ticket = connector.get_ticket(keys.external_id(mover.ticket_key))
    echo(f"Customer {customer_id} now costs 250,000 a year to serve (a field in {desk.title}). Next sync:")
    echo(f"  tags on their {desk.title} user were: {' '.join(before)}")
    echo(f"                               now: {' '.join(after)}")
    writes = second[f"tags_{desk.name}"]["write_calls"]
    rerouted = runtime.store.decision_outcomes().get("rerouted", 0)  # as the admin's Decisions page counts
    echo(
        f"  their open ticket {ticket.external_id} re-routed: priority {mover.priority} -> {ticket.priority} "
        f"({rerouted} ticket(s) re-routed, {writes} tag write call(s))"
    )
    third = scheduler.refresh(runtime)[f"tags_{desk.name}"]
    echo(f"  a sync with nothing new: {third['write_calls']} tag write calls")


def show_database(path: Path, temporary: bool, serving: bool, echo: Callable[[str], None]) -> None:
    """Where the demo's data is and the line that points the inspecting commands at it."""
    echo("")
    commands = ", ".join(f"`tierdesk {c}`" for c in INSPECT)
    if temporary and not serving:
        echo(
            f"The demo's database {path} is removed as the demo ends: add --db PATH to keep it and "
            f"look into it with {commands}."
        )
        return
    if temporary:
        echo(f"The demo's database is {path}, removed when the demo stops (--db PATH keeps it).")
        echo("While it runs, look into it from another terminal:")
    else:
        echo(f"The demo's database is kept at {path}. Look into it with:")
    echo(f"  export TIERDESK_DB={path}")
    echo("  " + "; ".join(f"tierdesk {c}" for c in INSPECT))


def serve_admin(
    runtime: Runtime, port: int, echo: Callable[[str], None], serving: bool, again: str = "tierdesk demo"
) -> None:
    """Print the admin's address and sign-in, then keep it (and workers) up until Ctrl-C when asked: by
    default when stdout is a terminal, so `make demo` lets a person click around the demo data while a
    script or test still gets a demo that ends on its own. ``again``: the command that ran this demo."""
    settings = runtime.settings
    url = f"http://127.0.0.1:{port}"
    echo("")
    echo(f"Admin: {url}/admin/ (user {settings.admin_user}, password {settings.admin_password})")
    echo(
        f'Admin API: curl -H "Authorization: Bearer {settings.admin_token}" {url}/api/segments '
        "(every endpoint: docs/api.md)"
    )
    if not serving:
        echo(f"The admin stops with the demo: run `{again} --serve` to keep it up.")
        return
    stop = threading.Event()
    start_workers(runtime, stop, settings.worker_threads)  # events replayed from the Queue page get routed
    echo("Serving the admin on the demo data until you press Ctrl-C...")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        echo("")
    finally:
        stop.set()


def run(
    customers: int = 1000,
    tickets: int = 50,
    seed: int = 42,
    echo: Callable[[str], None] = print,
    timeout: float = 60.0,
    helpdesk: str = "zendesk",
    serve: bool | None = None,
    db: str | None = None,
    port: int = 0,
) -> int:
    """The demo; ``db``: keep its database at this new path (else a temporary folder, removed at the
    end); ``port``: where tierdesk listens (0: any free port). Raises DemoError for options it cannot
    honour, before anything starts."""
    with contextlib.ExitStack() as cleanup:
        path, temporary = _database(db, cleanup)
        port = _port(port)
        again = "tierdesk demo" + (f" --helpdesk {helpdesk}" if helpdesk != "zendesk" else "")
        code = _run(
            customers, tickets, seed, echo, timeout, helpdesk, serve, path, temporary, port, again, cleanup
        )
    return code


def segmented_summary(runtime: Runtime, desk: Helpdesk, seconds: float) -> str:
    """ "Segmented N customers": the population segments are computed over (one row per person, CRM
    records linked into a helpdesk user and records held back by a conflict left out), and where they
    come from, so the number matches `tierdesk segment`, the admin's overview and its segments page."""
    by_source = runtime.store.customer_counts()
    total = sum(by_source.values())
    parts = [f"{by_source.get(desk.name, 0):,} {desk.title} users"]
    titles = {"hubspot": "HubSpot contacts"}
    parts += [
        f"{n:,} {titles.get(source, source + ' records')} not in {desk.title}"
        for source, n in sorted(by_source.items())
        if source != desk.name
    ]
    identity = runtime.store.identity_counts()
    linked, held = identity.get("person linked", 0), identity.get("person held", 0)
    extra = []
    if linked:
        extra.append(f"{linked:,} other records enrich one of them")
    if held:
        extra.append(f"{held:,} are held back by conflicts (tierdesk sync --status)")
    tail = f"; {', '.join(extra)}" if extra else ""
    return f"Segmented {total:,} customers in {seconds:.1f} s ({' and '.join(parts)}{tail}):"


def _run(
    customers: int,
    tickets: int,
    seed: int,
    echo: Callable[[str], None],
    timeout: float,
    helpdesk: str,
    serve: bool | None,
    path: Path,
    temporary: bool,
    port: int,
    again: str,
    cleanup: contextlib.ExitStack,
) -> int:
    started = time.monotonic()
    logs.setup("WARNING")
    rng = random.Random(seed)
    desk = HELPDESKS[helpdesk](customers, seed, f"http://127.0.0.1:{port}/webhooks/{helpdesk}", echo)
    cleanup.callback(desk.stop)
    admin = desk.admin

    admin_login = {  # fresh for every run, printed at the end
        "admin_password": secrets.token_urlsafe(9),
        "admin_token": secrets.token_urlsafe(24),
        "secret_key": secrets.token_hex(32),
    }
    settings = Settings(db=str(path), worker_threads=2, **admin_login, **desk.settings, **(desk.crm or {}))
    runtime = Runtime.from_settings(settings)
    cleanup.callback(runtime.store.close)
    connector = runtime.helpdesks[desk.name]
    connector.check_groups(runtime.mapping.groups)

    t0 = time.monotonic()
    # the refresh cycle's pull, identities and recompute; its tag push and re-routing are the scheduler's
    # part of the story (show_scheduler)
    refreshed = refresh.run(runtime, push=False)
    if refreshed.failures:
        raise RuntimeError("; ".join(refreshed.failures))
    counts = refreshed.sources[desk.name].pulled or {}
    crm = refreshed.sources.get("hubspot")
    crm_counts = (crm.pulled or {}) if crm is not None else {}
    assert refreshed.recomputed is not None  # noqa: S101 - the cycle always recomputes
    report = refreshed.recomputed
    seconds = time.monotonic() - t0
    crm = f", and {', '.join(f'{n} {k}' for k, n in crm_counts.items())} from HubSpot" if crm_counts else ""
    echo(
        f"Synced {counts['users']} users, {counts['organizations']} organizations and "
        f"{counts['tickets']} tickets from {desk.title}{crm}"
    )
    echo(segmented_summary(runtime, desk, seconds))
    for dimension, labels in report.distribution.items():
        parts = [f"{label or '-'} {n}" for label, n in labels.items()]
        echo(f"  {dimension:<10} " + ", ".join(parts))

    server = make_server(
        "127.0.0.1", port, create_app(runtime=runtime), threaded=True, request_handler=logs.AccessLog
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cleanup.callback(server.server_close)
    cleanup.callback(server.shutdown)
    stop = threading.Event()
    start_workers(runtime, stop, settings.worker_threads)
    echo(f"tierdesk listening on http://127.0.0.1:{port} with {settings.worker_threads} workers")

    requesters = pick_requesters(runtime, desk.name, tickets, rng)
    echo(
        f"Opening {len(requesters)} tickets through the {desk.title} API, {TICKETS_PER_SECOND} a second; "
        f"{desk.fires}..."
    )
    created = []
    pace = time.monotonic()
    for i, requester in enumerate(requesters):
        subject = SUBJECTS[i % len(SUBJECTS)]
        created.append(admin.create_ticket(requester, subject, f"{subject} (demo ticket {i + 1})"))
        pace += 1 / TICKETS_PER_SECOND
        time.sleep(max(0.0, pace - time.monotonic()))

    ticket_keys = [t.key for t in created]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(runtime.store.get_decision(k) for k in ticket_keys):
            break
        time.sleep(0.1)
    stop.set()  # the web server keeps serving: the admin printed at the end reads the same store

    decisions = {k: runtime.store.get_decision(k) for k in ticket_keys}
    routed = [d for d in decisions.values() if d and d.outcome == "applied"]
    sla_prefix = f"{runtime.mapping.tags.prefix}_sla_"
    failures = []
    rows = []
    latencies = []
    for ticket in created:
        decision = decisions[ticket.key]
        live = admin.get_ticket(ticket.external_id)  # what an agent sees now
        customer = runtime.store.get_customer(keys.user(desk.name, ticket.requester_id))
        segs = runtime.store.segments_for(customer.key) if customer else {}
        labels = " ".join(f"{d}={a.label}" for d, a in segs.items() if a.label)
        group_names = {str(v): k for k, v in connector.groups().items()}
        group = group_names.get(live.group_id or "", live.group_id or "-")
        sla = next((t.removeprefix(sla_prefix) for t in live.tags if t.startswith(sla_prefix)), "-")
        ms = decision.latency_ms if decision else None
        if ms is not None:
            latencies.append(ms)
        if not decision or live.priority != decision.priority or group != decision.group_name:
            failures.append(ticket.external_id)
        rows.append(
            (
                ticket.external_id,
                (customer.email or "")[:28] if customer else "?",
                labels,
                live.priority or "-",
                sla,
                group,
                f"{ms:.0f}" if ms is not None else "-",
            )
        )

    headers = ("ticket", "customer", "segments", "priority", "SLA", "group", "ms")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    echo("")
    echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    echo("  ".join("-" * w for w in widths))
    for row in sorted(rows, key=lambda r: (PRIORITY_ORDER.get(r[3], 4), int(r[0]))):
        echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))

    echo("")
    echo("Per segment (tickets routed, by priority):")
    per_segment: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for decision in routed:
        for dimension, seg in decision.segments.items():
            if seg["label"]:
                per_segment[(dimension, seg["label"])][decision.priority or "-"] += 1
    for (dimension, label), prios in sorted(per_segment.items()):
        spread = ", ".join(
            f"{p} {n}" for p, n in sorted(prios.items(), key=lambda x: PRIORITY_ORDER.get(x[0], 4))
        )
        echo(f"  {f'{dimension}={label}':<24} {sum(prios.values()):>3} tickets: {spread}")

    sample = next((d for d in routed if d.priority in ("urgent", "high")), routed[0] if routed else None)
    if sample:
        echo("")
        echo(f"The internal note on ticket {keys.external_id(sample.ticket_key)}:")
        for line in sample.note.splitlines():
            echo(f"  | {line}")

    show_scheduler(runtime, desk, routed, echo)

    echo("")
    if latencies:
        echo(
            f"Webhook to ticket updated: p50 {_percentile(latencies, 50):.0f} ms, "
            f"p95 {_percentile(latencies, 95):.0f} ms, max {max(latencies):.0f} ms "
            f"(mean {statistics.fmean(latencies):.0f} ms)"
        )
    echo(
        f"Routed {len(routed)} of {len(created)} tickets ({desk.vip_tagged} customers "
        f"carry the vip tag in {desk.title}); the demo took {time.monotonic() - started:.1f} s"
    )
    serving = sys.stdout.isatty() if serve is None else serve
    show_database(path, temporary, serving, echo)
    serve_admin(runtime, port, echo, serving, again)
    if failures or len(routed) != len(created):
        echo(f"FAILED: tickets not routed as decided: {', '.join(failures) or 'timeouts'}")
        return 1
    return 0

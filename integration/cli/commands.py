"""The `tierdesk` command: serve, worker, scheduler, sync, segment, queue, demo, sandbox."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from integration import logs
from integration.core.mapping import MappingError
from integration.runtime import Runtime, check_helpdesks, open_queue, open_store, read_mapping
from integration.settings import Settings, SettingsError

if TYPE_CHECKING:
    from integration.core.segments import QualityReport
    from integration.queue import Queue
    from integration.store import Store

# One-shot commands print tables a person reads: only warnings and errors log there by default.
QUIET = "WARNING"


@contextlib.contextmanager
def _startup() -> Iterator[None]:
    """A configuration mistake becomes one line naming the variable, its value and the fix; no traceback."""
    try:
        yield
    except (SettingsError, MappingError) as e:
        raise click.ClickException(str(e)) from e


def _settings(default_level: str = "INFO") -> Settings:
    with _startup():
        settings = Settings.from_env()
        try:
            logs.setup(settings.log_level, default_level)
        except ValueError as e:
            raise SettingsError(str(e)) from e
    return settings


def _runtime(*, webhooks: bool = True, level: str = "INFO") -> Runtime:
    """Everything a role needs: store, mapping and connectors. ``webhooks``: False for commands that never
    accept one, so they need no webhook secret."""
    settings = _settings(level)
    with _startup():
        return Runtime.from_settings(settings, webhooks=webhooks)


def _local() -> Runtime:
    """Store, queue and mapping, no helpdesk: commands over stored data need TIERDESK_DB alone."""
    settings = _settings(QUIET)
    with _startup():
        return Runtime.local(settings)


def _store() -> Store:
    """Only the store, which must exist: for commands that look at it."""
    settings = _settings(QUIET)
    with _startup():
        return open_store(settings, must_exist=True)


def _queue() -> Queue:
    settings = _settings(QUIET)
    with _startup():
        return open_queue(settings, open_store(settings, must_exist=True))


def _on_term(stop: threading.Event) -> None:
    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)


def start_workers(runtime: Runtime, stop: threading.Event, count: int) -> list[threading.Thread]:
    from integration.worker import Worker

    threads = []
    for i in range(count):
        worker = Worker(runtime)
        thread = threading.Thread(target=worker.run, args=(stop,), name=f"worker-{i}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def _check_groups(runtime: Runtime) -> None:
    """A wrong token, an unreachable helpdesk or a mapped group it lacks stops the start, in one line."""
    with _startup():
        check_helpdesks(runtime)


@click.group()
def main() -> None:
    """tierdesk: segment-aware routing for helpdesk tickets."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Run web, worker and scheduler in one process (the embedded default)."""
    from werkzeug.serving import make_server

    from integration.scheduler import build
    from integration.web.app import create_app

    runtime = _runtime()
    _check_groups(runtime)
    try:
        server = make_server(
            host, port, create_app(runtime=runtime), threaded=True, request_handler=logs.AccessLog
        )
    except OSError as e:
        raise click.ClickException(
            f"--host {host} --port {port}: cannot listen there ({e.strerror or e}); pass another --port"
        ) from e
    stop = threading.Event()
    start_workers(runtime, stop, runtime.settings.worker_threads)
    scheduler = build(runtime, blocking=False)
    scheduler.start()
    _on_term(stop)
    threading.Thread(target=lambda: (stop.wait(), server.shutdown()), daemon=True).start()
    click.echo(f"tierdesk serving on http://{host}:{server.server_port}")  # logs go to stderr
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        scheduler.shutdown(wait=False)


@main.command()
def worker() -> None:
    """Process queued webhook events until stopped (SIGTERM finishes the current event)."""
    runtime = _runtime()
    _check_groups(runtime)
    stop = threading.Event()
    _on_term(stop)
    threads = start_workers(runtime, stop, runtime.settings.worker_threads)
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
    except KeyboardInterrupt:
        stop.set()


@main.command()
def scheduler() -> None:
    """Run the periodic jobs (incremental sync and recompute) until stopped."""
    from integration.scheduler import build

    runtime = _runtime(webhooks=False)
    sched = build(runtime, blocking=True)
    signal.signal(signal.SIGTERM, lambda *_: sched.shutdown(wait=False))
    with contextlib.suppress(KeyboardInterrupt):
        sched.start()


class SyncProgress:
    """A progress bar per stream while `tierdesk sync` pulls, only when stdout is a terminal.

    Streams whose connector can estimate their size (HubSpot's search total, a CSV file's lines) get a
    bar; the others a running count. Cron jobs and pipes see nothing but the summary lines.
    """

    def __init__(self, connector: object, store: object, full: bool, enabled: bool | None = None) -> None:
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self.totals: dict[str, int | None] = {}
        self.stream: str | None = None
        self.bar: object = None
        self.done = 0
        estimate = getattr(connector, "estimate", None)
        if self.enabled and estimate is not None:
            from connectors.http import ApiError

            name = getattr(connector, "name", "")
            for stream in getattr(connector, "streams", ()):
                cursor = None if full else store.get_cursor(name, stream)  # type: ignore[attr-defined]
                try:
                    self.totals[stream] = estimate(stream, cursor)
                except (ApiError, ValueError, OSError):
                    self.totals[stream] = None  # the pull itself will report the problem

    def __call__(self, connector: str, stream: str, count: int) -> None:
        if not self.enabled:
            return
        if stream != self.stream:
            self.close()
            self.stream, self.done = stream, 0
            total = self.totals.get(stream)
            if total:
                self.bar = click.progressbar(length=total, label=f"{connector} {stream}", show_pos=True)
                self.bar.__enter__()  # type: ignore[attr-defined]
        if self.bar is not None:
            self.bar.update(count - self.done)  # type: ignore[attr-defined]
        else:
            click.echo(f"\r{connector} {stream}: {count} records", nl=False)
        self.done = count

    def close(self) -> None:
        if not self.enabled or self.stream is None:
            return
        if self.bar is not None:
            self.bar.__exit__(None, None, None)  # type: ignore[attr-defined]
            self.bar = None
        else:
            click.echo("\r\033[K", nl=False)
        self.stream = None


def print_sync_status(store: Store, echo: Callable[[str], None]) -> None:
    """Every stream's cursor, last run, counts and last error, then identity matching's state."""
    rows = store.sync_state()
    if not rows:
        echo("no sync has run yet")
    else:
        header = ("connector", "stream", "status", "last run (UTC)", "last", "total")
        echo("{:<12} {:<14} {:<8} {:<20} {:>7} {:>8}  cursor".format(*header))
        for row in rows:
            finished = row.get("finished_at") or row.get("started_at") or row["updated_at"] or ""
            cursor = row["cursor"] or "-"
            echo(
                f"{row['connector']:<12} {row['stream']:<14} {row.get('status') or '-':<8} "
                f"{finished.replace('T', ' ')[:19]:<20} {row.get('last_records') or 0:>7} "
                f"{row['records']:>8}  {cursor[:40]}"
            )
            if row.get("last_error") and row.get("status") == "error":
                echo(f"    error: {row['last_error']}")
    counts = store.identity_counts()
    if counts:
        echo("identity: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    conflicts = store.identity_conflicts()
    if conflicts:
        echo(f"{len(conflicts)} identity conflict(s), held back from merging:")
        for conflict in conflicts:
            echo(f"  {conflict['kind']} {conflict['code']}: {conflict['detail']}")


@main.command()
@click.option("--full", is_flag=True, help="Forget the cursors and pull everything again.")
@click.option("--connector", "only", metavar="NAME", help="Pull only this connector (zendesk, hubspot, ...).")
@click.option("--status", is_flag=True, help="List every stream's cursor, last run, counts and errors.")
def sync(full: bool, only: str | None, status: bool) -> None:
    """Pull customers, organizations, tickets and revenue, match identities, then recompute segments."""
    from connectors.http import ApiError
    from integration import sync as sync_
    from integration.runtime import explain_api_error

    if status:
        print_sync_status(_store(), click.echo)
        return
    runtime = _runtime(webhooks=False, level=QUIET)
    connectors = list(runtime.connectors.values())
    if only is not None:
        if only not in runtime.connectors:
            configured = ", ".join(runtime.connectors) or "none"
            raise click.BadParameter(
                f"no connector named {only!r} (configured: {configured})", param_hint="--connector"
            )
        connectors = [runtime.connectors[only]]
    failed: list[str] = []
    for connector in connectors:
        progress = SyncProgress(connector, runtime.store, full)
        try:
            counts = sync_.pull(runtime.store, connector, full=full, progress=progress, resolve=False)
        except (ApiError, ValueError, OSError) as e:  # the others still sync; the state keeps the error
            progress.close()
            why = explain_api_error(connector, e) if isinstance(e, ApiError) else str(e)
            click.echo(f"{connector.name}: failed: {why}", err=True)
            failed.append(connector.name)
            continue
        progress.close()
        click.echo(f"{connector.name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    resolution = sync_.resolve_identities(runtime.store)
    if resolution is not None:
        click.echo(
            f"identity: {resolution.people} people, {resolution.organizations} organizations, "
            f"{resolution.linked} records linked, {len(resolution.conflicts)} conflicts"
        )
        for conflict in resolution.conflicts[:10]:
            click.echo(f"  conflict ({conflict.kind}, {conflict.code}): {conflict.detail}")
        if len(resolution.conflicts) > 10:
            click.echo("  ... `tierdesk sync --status` lists them all")
    report = sync_.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
    click.echo(f"segments: {report.customers} customers, {report.changes} changes")
    if failed:
        raise click.ClickException(f"pull failed for {', '.join(failed)} (details: tierdesk sync --status)")


def print_distribution(distribution: dict[str, dict[str | None, int]], echo: Callable) -> None:
    for dimension, labels in distribution.items():
        total = sum(labels.values()) or 1
        parts = [f"{label or '-'} {n} ({n / total:.0%})" for label, n in labels.items()]
        echo(f"  {dimension:<10} " + ", ".join(parts))


@main.command()
@click.option(
    "--report", "with_report", is_flag=True, help="Also print data quality and segment-size warnings."
)
@click.option(
    "--min-share", default=1.0, show_default=True, help="Warn about segments under this % of customers."
)
@click.option(
    "--max-share", default=80.0, show_default=True, help="Warn about segments over this % of customers."
)
def segment(with_report: bool, min_share: float, max_share: float) -> None:
    """Recompute every customer's segments from stored data and print the distribution."""
    from integration import sync as sync_

    runtime = _local()
    started = time.monotonic()
    report = sync_.recompute(
        runtime.store,
        runtime.mapping,
        runtime.mapping_digest,
        min_share=min_share / 100,
        max_share=max_share / 100,
    )
    click.echo(
        f"{report.customers} customers, {report.changes} segment changes ({time.monotonic() - started:.1f} s)"
    )
    print_distribution(report.distribution, click.echo)
    if with_report and report.quality is not None:
        print_quality(report.quality, click.echo)


def print_quality(quality: QualityReport, echo: Callable) -> None:
    """Missing inputs per attribute, then the over- and under-segmentation warnings."""
    echo("Data quality: customers without each input the mapping reads")
    for name, n in quality.missing.items():
        share = n / quality.customers if quality.customers else 0.0
        echo(f"  {name:<24} {n:>9,} missing ({share:.1%})")
    if quality.organization_missing:
        echo(f"Organizations ({quality.organizations:,}) without each input of organization-level dimensions")
        for name, n in quality.organization_missing.items():
            share = n / quality.organizations if quality.organizations else 0.0
            echo(f"  {name:<24} {n:>9,} missing ({share:.1%})")
    if quality.warnings:
        echo("Warnings:")
        for warning in quality.warnings:
            echo(f"  - {warning}")
    else:
        echo("Warnings: none")


@main.group(invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Include done events.")
@click.pass_context
def queue(ctx: click.Context, show_all: bool) -> None:
    """List pending, leased and dead events."""
    if ctx.invoked_subcommand:
        return
    queue_ = _queue()
    store = queue_.store
    statuses = ["pending", "leased", "dead", *(["done"] if show_all else [])]
    counts = store.queue_counts()
    click.echo("queue: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty"))
    files, unmoved, _ = queue_.backlog(time.time())
    if unmoved:
        click.echo(f"inbox: {unmoved} bytes in {files} file(s) not yet moved into the queue (no worker up?)")
    events = store.list_events(statuses, limit=200)
    if events:
        click.echo(
            f"{'id':>6}  {'status':<8} {'ticket':<24} {'attempts':>8}  {'received (UTC)':<19}  last error"
        )
    for event in events:
        received = datetime.fromtimestamp(event.received_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(
            f"{event.id:>6}  {event.status:<8} {event.ticket_key:<24} {event.attempts:>8}  "
            f"{received:<19}  {event.last_error or ''}"
        )


@queue.command("retry")
@click.argument("event_id", type=int, required=False)
@click.option("--dead", "all_dead", is_flag=True, help="Replay every dead event (narrow with the filters).")
@click.option("--error", "error_contains", help="Only events whose last error contains this text.")
@click.option("--source", help="Only events from this webhook source, e.g. zendesk.")
@click.option("--ticket", help="Only events of this ticket id.")
def queue_retry(
    event_id: int | None, all_dead: bool, error_contains: str | None, source: str | None, ticket: str | None
) -> None:
    """Replay one dead or stuck event by ID, or all dead events matching the filters."""
    queue_ = _queue()
    if event_id is not None:
        if not queue_.replay(event_id):
            raise click.ClickException(f"event {event_id} not found or already done")
        click.echo(f"event {event_id} queued again")
        return
    if not (all_dead or error_contains or source or ticket):
        raise click.UsageError("give an event ID, or --dead (optionally with --error/--source/--ticket)")
    ids = queue_.replay_matching(source=source, error_contains=error_contains, ticket_id=ticket)
    click.echo(f"{len(ids)} dead event(s) queued again" + (f": {', '.join(map(str, ids))}" if ids else ""))


@main.command()
@click.option(
    "--run",
    "run_name",
    type=click.Choice(["sync", "recompute", "sweep", "prune", "refit"]),
    help="Run a job now.",
)
@click.option("--limit", default=20, show_default=True, help="How many recent runs to list.")
def jobs(run_name: str | None, limit: int) -> None:
    """List recent scheduled job runs (start, end, counts, API calls, errors), or run one now."""
    from integration.scheduler import run_job

    if run_name:
        runtime = _runtime(webhooks=False, level=QUIET)
        counts = run_job(runtime, run_name)
        if counts is None:
            raise click.ClickException(f"{run_name} is running in another process (its lock is held)")
        click.echo(f"{run_name}: {json.dumps(counts, sort_keys=True)}")
        return
    runs = _store().list_job_runs(limit)
    if not runs:
        click.echo("no job runs yet")
        return
    click.echo(
        f"{'id':>5}  {'job':<9} {'status':<7} {'started (UTC)':<19}  {'took':>9}  {'api calls':>9}  counts"
    )
    for run in runs:
        started = datetime.fromtimestamp(run["started_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        took = f"{run['finished_at'] - run['started_at']:.1f} s" if run["finished_at"] else "running"
        click.echo(
            f"{run['id']:>5}  {run['job']:<9} {run['status']:<7} {started:<19}  {took:>9}  "
            f"{run['api_calls']:>9}  {json.dumps(run['counts'], sort_keys=True)}"
            + (f"  error: {run['error']}" if run["error"] else "")
        )


@main.group()
def setup() -> None:
    """Create or update what a helpdesk needs for tierdesk (idempotent)."""


@setup.command("zendesk")
@click.option(
    "--url",
    "public_url",
    required=True,
    help="tierdesk's own public base URL, which Zendesk will call (not Zendesk's), "
    "e.g. https://tierdesk.acme.com",
)
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
def setup_zendesk(public_url: str, dry_run: bool) -> None:
    """The webhook, the "ticket created" trigger and one SLA policy per SLA in the mapping."""
    from connectors import zendesk_setup
    from integration.core import routing

    settings = _settings(QUIET)
    if not settings.zendesk_configured:
        raise click.ClickException(
            "set TIERDESK_ZENDESK_URL, TIERDESK_ZENDESK_EMAIL and TIERDESK_ZENDESK_TOKEN"
        )
    with _startup():  # no webhook secret needed: this command is where it comes from
        runtime = Runtime.from_settings(settings, webhooks=False)
    targets = getattr(runtime.mapping, "sla_targets", {})
    slas = [
        zendesk_setup.SlaSpec(
            name,
            routing.sla_tag(name, runtime.mapping),
            getattr(targets.get(name), "first_response_minutes", None),
            getattr(targets.get(name), "resolution_minutes", None),
        )
        for name in sorted(runtime.mapping.slas)
    ]
    result = zendesk_setup.run(
        runtime.connectors["zendesk"],  # type: ignore[arg-type]
        endpoint=f"{public_url.rstrip('/')}/webhooks/zendesk",
        slas=slas,
        dry_run=dry_run,
        echo=click.echo,
    )
    if dry_run:
        click.echo(f"dry run: {result.changes} change(s) planned, nothing sent")
        return
    click.echo(f"{result.changes} change(s) made")
    if result.secret and result.secret != settings.zendesk_webhook_secret:
        click.echo(f"Set TIERDESK_ZENDESK_WEBHOOK_SECRET to the webhook's signing secret: {result.secret}")


@setup.command("freshdesk")
@click.option(
    "--url", "public_url", required=True, help="tierdesk's own public base URL, which Freshdesk will call"
)
def setup_freshdesk(public_url: str) -> None:
    """Freshdesk has no API for automation rules: print the rule to create by hand."""
    from connectors import freshdesk_setup

    settings = _settings(QUIET)
    with _startup():
        mapping, _ = read_mapping(settings)
    endpoint = f"{public_url.rstrip('/')}/webhooks/freshdesk"
    click.echo(freshdesk_setup.instructions(endpoint, sorted(mapping.slas)))


@main.command()
@click.option("--customers", default=1000, show_default=True)
@click.option("--tickets", default=50, show_default=True)
@click.option("--seed", default=42, show_default=True)
@click.option(
    "--helpdesk",
    type=click.Choice(["zendesk", "freshdesk"]),
    default="zendesk",
    show_default=True,
    help="Which helpdesk sandbox to run the demo against.",
)
@click.option(
    "--serve/--no-serve",
    default=None,
    help="Keep serving the admin on the demo data until Ctrl-C (default: when stdout is a terminal).",
)
@click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False),
    help="Keep the demo's database at this new path (default: a temporary folder, removed at the end).",
)
@click.option(
    "--port",
    default=0,
    type=click.IntRange(0, 65535),
    help="Port for tierdesk's webhooks and admin [default: any free one].",
)
def demo(
    customers: int, tickets: int, seed: int, helpdesk: str, serve: bool | None, db: str | None, port: int
) -> None:
    """Run the whole flow against a local helpdesk sandbox and print what happened."""
    from integration.cli.demo import DemoError, run

    try:
        code = run(
            customers=customers,
            tickets=tickets,
            seed=seed,
            echo=click.echo,
            helpdesk=helpdesk,
            serve=serve,
            db=db,
            port=port,
        )
    except DemoError as e:
        raise click.ClickException(str(e)) from e
    sys.exit(code)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True)
@click.option("--customers", default=1000, show_default=True)
@click.option("--seed", default=42, show_default=True)
def sandbox(host: str, port: int, customers: int, seed: int) -> None:
    """Run the Zendesk sandbox on its own, seeded with synthetic customers."""
    from sandbox.zendesk import ZendeskSandbox
    from sandbox.zendesk.seed import seed as seed_data

    box = ZendeskSandbox()
    seed_data(box, customers=customers, seed=seed)
    try:
        url = box.start(host=host, port=port)
    except OSError as e:
        raise click.ClickException(
            f"--host {host} --port {port}: cannot listen there ({e.strerror or e}); pass another --port"
        ) from e
    click.echo(f"Zendesk sandbox on {url} (user {box.email}/token, token {box.token})")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        box.stop()


if __name__ == "__main__":
    main()

"""The `tierdesk` command: serve, worker, scheduler, sync, segment, queue, demo, sandbox."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from integration import logs
from integration.cli.printing import (
    SyncProgress,
    print_distribution,
    print_quality,
    print_refresh,
    print_sync_status,
)
from integration.core.mapping import MappingError
from integration.runtime import Runtime, check_helpdesks, open_queue, open_store, read_mapping
from integration.settings import Settings, SettingsError

if TYPE_CHECKING:
    from integration.queue import Queue
    from integration.refresh import RefreshReport
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

    from integration.cli.processes import on_term, start_scheduler, start_workers
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
    scheduler = start_scheduler(runtime)
    on_term(stop)
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
    from integration.cli.processes import on_term, start_workers

    runtime = _runtime()
    _check_groups(runtime)
    stop = threading.Event()
    on_term(stop)
    threads = start_workers(runtime, stop, runtime.settings.worker_threads)
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
    except KeyboardInterrupt:
        stop.set()


@main.command()
def scheduler() -> None:
    """Run the periodic jobs (incremental sync and recompute) until stopped."""
    from integration.cli.processes import run_scheduler

    run_scheduler(_runtime(webhooks=False))


@main.command()
@click.option("--full", is_flag=True, help="Forget the cursors and pull everything again.")
@click.option("--connector", "only", metavar="NAME", help="Pull only this connector (zendesk, hubspot, ...).")
@click.option("--status", is_flag=True, help="List every stream's cursor, last run, counts and errors.")
def sync(full: bool, only: str | None, status: bool) -> None:
    """Pull, match identities, recompute segments, push segment tags and re-route: the scheduler's sync, now.

    One refresh cycle (integration/refresh.py), the same the scheduler's `sync` job runs (`--full`: its
    `recompute` job), under the same lock and recorded the same way (`tierdesk jobs`). A source that
    fails to pull is reported and the others go on; the command then exits non-zero.
    """
    from integration import refresh
    from integration.scheduler import job_counts, lock_name, run_locked

    if status:
        print_sync_status(_store(), click.echo)
        return
    runtime = _runtime(webhooks=False, level=QUIET)
    if only is not None and only not in runtime.sources:
        configured = ", ".join(runtime.sources) or "none"
        raise click.BadParameter(
            f"no connector named {only!r} (configured: {configured})", param_hint="--connector"
        )

    def pulled(source: refresh.SourceReport) -> None:
        if source.pull_error is not None:  # the others still sync; the state keeps the error
            click.echo(f"{source.name}: failed: {source.pull_error}", err=True)
        else:
            click.echo(f"{source.name}: " + ", ".join(f"{k} {v}" for k, v in (source.pulled or {}).items()))

    report: RefreshReport | None = None

    def cycle(rt: Runtime) -> dict[str, Any]:
        nonlocal report
        report = refresh.run(
            rt,
            full=full,
            only=only,
            progress=lambda connector: SyncProgress(connector, rt.store, full),
            pulled=pulled,
        )
        return job_counts(report)

    job = "recompute" if full else "sync"
    run = run_locked(runtime, job, cycle)
    if run is None:
        raise click.ClickException(
            f"another process is refreshing now (its lock {lock_name(job)} is held): "
            "try again when it ends (tierdesk jobs lists the runs)"
        )
    if report is None:
        raise click.ClickException(f"sync failed: {run.error} (tierdesk jobs lists the run)")
    print_refresh(report, click.echo)
    if report.failed_pulls:
        failed = ", ".join(report.failed_pulls)
        raise click.ClickException(f"pull failed for {failed} (details: tierdesk sync --status)")
    if report.failures:
        raise click.ClickException("; ".join(report.failures))


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
    from integration import segment_service

    runtime = _local()
    started = time.monotonic()
    report = segment_service.recompute(
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
    from connectors.zendesk import setup as zendesk_setup
    from integration.core import routing

    settings = _settings(QUIET)
    if not settings.zendesk_configured:
        raise click.ClickException(
            "set TIERDESK_ZENDESK_URL, TIERDESK_ZENDESK_EMAIL and TIERDESK_ZENDESK_TOKEN"
        )
    with _startup():  # no webhook secret needed: this command is where it comes from
        runtime = Runtime.from_settings(settings, webhooks=False)
    targets = runtime.mapping.sla_targets
    slas = [
        zendesk_setup.SlaSpec(
            name,
            routing.sla_tag(name, runtime.mapping),
            targets[name].first_response_minutes if name in targets else None,
            targets[name].resolution_minutes if name in targets else None,
        )
        for name in sorted(runtime.mapping.slas)
    ]
    result = zendesk_setup.run(
        runtime.helpdesks["zendesk"],
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
    from connectors.freshdesk import setup as freshdesk_setup

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

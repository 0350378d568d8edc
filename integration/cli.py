"""The `tierdesk` command: serve, worker, scheduler, sync, segment, queue, demo, sandbox."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from integration import logs
from integration.mapping import MappingError
from integration.runtime import Runtime
from integration.settings import Settings, SettingsError

if TYPE_CHECKING:
    from integration.segments import QualityReport


def _runtime() -> Runtime:
    """Build the runtime from the environment, turning configuration mistakes into one clear line."""
    try:
        settings = Settings.from_env()
        logs.setup(settings.log_level)
        return Runtime.from_settings(settings)
    except (SettingsError, MappingError) as e:
        raise click.ClickException(str(e)) from e


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
    """A mapped group the helpdesk lacks is an error at start, not a silent skip per ticket."""
    from connectors.http import ApiError

    for connector in runtime.connectors.values():
        try:
            connector.check_groups(runtime.mapping.groups)
        except ApiError as e:
            raise click.ClickException(str(e)) from e


@click.group()
def main() -> None:
    """tierdesk: segment-aware routing for helpdesk tickets."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Run web, worker and scheduler in one process (the embedded default)."""
    from werkzeug.serving import make_server

    from integration.app import create_app
    from integration.scheduler import build

    runtime = _runtime()
    _check_groups(runtime)
    stop = threading.Event()
    start_workers(runtime, stop, runtime.settings.worker_threads)
    scheduler = build(runtime, blocking=False)
    scheduler.start()
    server = make_server(host, port, create_app(runtime=runtime), threaded=True)
    _on_term(stop)
    threading.Thread(target=lambda: (stop.wait(), server.shutdown()), daemon=True).start()
    click.echo(f"tierdesk serving on http://{host}:{server.server_port}", err=True)
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

    runtime = _runtime()
    sched = build(runtime, blocking=True)
    signal.signal(signal.SIGTERM, lambda *_: sched.shutdown(wait=False))
    with contextlib.suppress(KeyboardInterrupt):
        sched.start()


@main.command()
@click.option("--full", is_flag=True, help="Forget the cursors and pull everything again.")
def sync(full: bool) -> None:
    """Pull customers, organizations and tickets, then recompute segments."""
    from integration import sync as sync_

    runtime = _runtime()
    for connector in runtime.connectors.values():
        counts = sync_.pull(runtime.store, connector, full=full)
        click.echo(f"{connector.name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    report = sync_.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
    click.echo(f"segments: {report.customers} customers, {report.changes} changes")


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

    runtime = _runtime()
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
    runtime = _runtime()
    statuses = ["pending", "leased", "dead", *(["done"] if show_all else [])]
    counts = runtime.store.queue_counts()
    click.echo("queue: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty")
    for event in runtime.store.list_events(statuses, limit=200):
        received = datetime.fromtimestamp(event.received_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(
            f"{event.id:>6}  {event.status:<8} {event.ticket_key:<24} attempts {event.attempts}  "
            f"received {received}  {event.last_error or ''}"
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
    runtime = _runtime()
    if event_id is not None:
        if not runtime.queue.replay(event_id):
            raise click.ClickException(f"event {event_id} not found or already done")
        click.echo(f"event {event_id} queued again")
        return
    if not (all_dead or error_contains or source or ticket):
        raise click.UsageError("give an event ID, or --dead (optionally with --error/--source/--ticket)")
    ids = runtime.queue.replay_matching(source=source, error_contains=error_contains, ticket_id=ticket)
    click.echo(f"{len(ids)} dead event(s) queued again" + (f": {', '.join(map(str, ids))}" if ids else ""))


@main.command()
@click.option("--run", "run_name", type=click.Choice(["sync", "recompute", "sweep"]), help="Run a job now.")
@click.option("--limit", default=20, show_default=True, help="How many recent runs to list.")
def jobs(run_name: str | None, limit: int) -> None:
    """List recent scheduled job runs (start, end, counts, API calls, errors), or run one now."""
    from integration.scheduler import run_job

    runtime = _runtime()
    if run_name:
        counts = run_job(runtime, run_name)
        if counts is None:
            raise click.ClickException(f"{run_name} is running in another process (its lock is held)")
        click.echo(f"{run_name}: {json.dumps(counts, sort_keys=True)}")
        return
    runs = runtime.store.list_job_runs(limit)
    if not runs:
        click.echo("no job runs yet")
    for run in runs:
        started = datetime.fromtimestamp(run["started_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        took = f"{run['finished_at'] - run['started_at']:.1f} s" if run["finished_at"] else "running"
        click.echo(
            f"{run['id']:>5}  {run['job']:<9} {run['status']:<7} {started}  {took:>9}  "
            f"api calls {run['api_calls']:<6} {json.dumps(run['counts'], sort_keys=True)}"
            + (f"  error: {run['error']}" if run["error"] else "")
        )


@main.group()
def setup() -> None:
    """Create or update what a helpdesk needs for tierdesk (idempotent)."""


@setup.command("zendesk")
@click.option(
    "--url", "public_url", required=True, help="tierdesk's public base URL, e.g. https://tierdesk.acme.com"
)
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
def setup_zendesk(public_url: str, dry_run: bool) -> None:
    """The webhook, the "ticket created" trigger and one SLA policy per SLA in the mapping."""
    from connectors import zendesk_setup
    from integration import routing

    settings = Settings.from_env()
    if not settings.zendesk_configured:
        raise click.ClickException(
            "set TIERDESK_ZENDESK_URL, TIERDESK_ZENDESK_EMAIL and TIERDESK_ZENDESK_TOKEN"
        )
    runtime = Runtime.from_settings(replace(settings, insecure_dev=True))  # the secret comes from here
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
@click.option("--url", "public_url", required=True, help="tierdesk's public base URL")
def setup_freshdesk(public_url: str) -> None:
    """Freshdesk has no API for automation rules: print the rule to create by hand."""
    from connectors import freshdesk_setup
    from integration.runtime import load_mapping

    mapping, _ = load_mapping(Settings.from_env().mappings)
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
def demo(customers: int, tickets: int, seed: int, helpdesk: str) -> None:
    """Run the whole flow against a local helpdesk sandbox and print what happened."""
    from integration.demo import run

    sys.exit(run(customers=customers, tickets=tickets, seed=seed, echo=click.echo, helpdesk=helpdesk))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True)
@click.option("--customers", default=1000, show_default=True)
@click.option("--seed", default=42, show_default=True)
def sandbox(host: str, port: int, customers: int, seed: int) -> None:
    """Run the Zendesk sandbox on its own, seeded with synthetic customers."""
    from connectors.sandbox.seed import seed as seed_data
    from connectors.sandbox.zendesk import ZendeskSandbox

    box = ZendeskSandbox()
    seed_data(box, customers=customers, seed=seed)
    url = box.start(host=host, port=port)
    click.echo(f"Zendesk sandbox on {url} (user {box.email}/token, token {box.token})")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        box.stop()


if __name__ == "__main__":
    main()

"""What the one-shot commands print: sync progress and results, segment distributions, data quality.

Tables and summaries go to stdout (``echo``); log lines go to stderr (logs.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from connectors.http import ApiError

if TYPE_CHECKING:
    from connectors.base import Source
    from integration.core.segments import QualityReport
    from integration.refresh import RefreshReport
    from integration.store import Store


class SyncProgress:
    """A progress bar per stream while `tierdesk sync` pulls, only when stdout is a terminal.

    Streams whose connector can estimate their size (HubSpot's search total, a CSV file's lines) get a
    bar; the others a running count. Cron jobs and pipes see nothing but the summary lines.
    """

    def __init__(self, connector: Source, store: Store, full: bool, enabled: bool | None = None) -> None:
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self.totals: dict[str, int | None] = {}
        self.stream: str | None = None
        self.bar: object = None
        self.done = 0
        if self.enabled:
            for stream in connector.streams:
                cursor = None if full else store.get_cursor(connector.name, stream)
                try:
                    self.totals[stream] = connector.estimate(stream, cursor)
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


def print_refresh(report: RefreshReport, echo: Callable[..., None]) -> None:
    """What a refresh cycle did after the pulls: identities, segments, tags pushed, tickets re-routed."""
    resolution = report.resolution
    if resolution is not None:
        echo(
            f"identity: {resolution.people} people, {resolution.organizations} organizations, "
            f"{resolution.linked} records linked, {len(resolution.conflicts)} conflicts"
        )
        for conflict in resolution.conflicts[:10]:
            echo(f"  conflict ({conflict.kind}, {conflict.code}): {conflict.detail}")
        if len(resolution.conflicts) > 10:
            echo("  ... `tierdesk sync --status` lists them all")
    if report.recomputed is not None:
        echo(f"segments: {report.recomputed.customers} customers, {report.recomputed.changes} changes")
    for source in report.sources.values():
        pushed = source.tags
        if pushed is None or not pushed.planned:
            continue  # this connector keeps no segment tags
        planned = ", ".join(f"{n} {kind}" for kind, n in pushed.planned.items())
        failed = sum(pushed.failed.values())
        echo(
            f"tags: {source.name} {planned} to change, {pushed.write_calls} write calls"
            + (f", {failed} not written (tried again next sync)" if failed else "")
        )
    rerouted = {s.name: s.rerouted.updated for s in report.sources.values() if s.rerouted is not None}
    if rerouted:
        moved = sum(rerouted.values())
        each = ", ".join(f"{name} {n}" for name, n in rerouted.items() if n)
        echo(f"re-routed: {moved} open ticket(s)" + (f" ({each})" if each else ""))
    for source in report.sources.values():
        errors = [*(source.tags.errors if source.tags else [])]
        errors += source.rerouted.errors if source.rerouted else []
        for error in errors[:5]:
            echo(f"{source.name}: {error}", err=True)


def print_distribution(distribution: dict[str, dict[str | None, int]], echo: Callable) -> None:
    for dimension, labels in distribution.items():
        total = sum(labels.values()) or 1
        parts = [f"{label or '-'} {n} ({n / total:.0%})" for label, n in labels.items()]
        echo(f"  {dimension:<10} " + ", ".join(parts))


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

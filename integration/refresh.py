"""The refresh cycle: the one body of the scheduler's `sync` and `recompute` jobs and of `tierdesk sync`.

One cycle, in this order:
1. pull every source (or the one asked for), each on its own: a source that fails is isolated (its
   error is logged, kept in the store's stream state for `tierdesk sync --status`, and reported) and
   the others go on;
2. resolve identities across sources, once;
3. recompute everyone's segments, which fits the model (segment_service.py);
4. push changed segment tags to every connector that keeps them;
5. re-route the open tickets of customers whose segments changed since the last re-route.

Steps 4 and 5 run per connector and are isolated the same way. The report says what each step did and
what failed; the scheduler records it as the job run's counts (`tierdesk jobs`), the CLI prints it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from connectors.base import Connector, Source
from connectors.http import ApiError
from integration import reroute, segment_service, tagsync
from integration.core import identity
from integration.pull import pull, resolve_identities
from integration.runtime import Runtime, explain_api_error

log = logging.getLogger("tierdesk.sync")

EXPECTED = (ApiError, ValueError, OSError)  # a source's own trouble; anything else is logged as a bug too


class Progress(Protocol):
    """What shows a pull's progress (the CLI's bars): called per page, closed when the source is done."""

    def __call__(self, connector: str, stream: str, count: int) -> None: ...

    def close(self) -> None: ...


@dataclass
class SourceReport:
    """One connector's part of a cycle. ``pulled`` is None when the cycle did not pull it (--connector)."""

    name: str
    pulled: dict[str, int] | None = None
    pull_error: str | None = None  # why the pull failed, in words a person can act on
    tags: tagsync.PushSummary | None = None
    rerouted: reroute.RerouteSummary | None = None
    errors: list[str] = field(default_factory=list)  # a tag push or re-route that failed as a whole


@dataclass
class RefreshReport:
    full: bool
    sources: dict[str, SourceReport]
    resolution: identity.Resolution | None = None
    recomputed: segment_service.RecomputeReport | None = None

    @property
    def failures(self) -> list[str]:
        """One line per step that failed as a whole: a source's pull, a connector's push or re-route."""
        out = [f"pull {s.name}: {s.pull_error}" for s in self.sources.values() if s.pull_error]
        out += [f"{s.name}: {error}" for s in self.sources.values() for error in s.errors]
        return out

    @property
    def failed_pulls(self) -> list[str]:
        return [s.name for s in self.sources.values() if s.pull_error]

    def counts(self) -> dict[str, Any]:
        """The job run's counts, as `tierdesk jobs` lists them (the keys the sync job has always kept)."""
        counts: dict[str, Any] = {}
        for source in self.sources.values():
            if source.pulled is not None:
                counts[f"pulled_{source.name}"] = source.pulled
            if source.pull_error:
                counts[f"pull_failed_{source.name}"] = source.pull_error
        if self.recomputed is not None:
            counts["customers"] = self.recomputed.customers
            counts["segment_changes"] = self.recomputed.changes
        for source in self.sources.values():
            errors = list(source.errors)
            if source.tags is not None:
                pushed = source.tags
                counts[f"tags_{source.name}"] = {
                    "planned": pushed.planned,
                    "write_calls": pushed.write_calls,
                    "job_polls": pushed.job_polls,
                    "failed": pushed.failed,
                }
                errors += pushed.errors
            if source.rerouted is not None:
                counts[f"rerouted_{source.name}"] = source.rerouted.updated
                errors += source.rerouted.errors
            if errors:
                counts[f"errors_{source.name}"] = errors[:20]
        return counts


def _why(connector: Connector, error: Exception) -> str:
    if isinstance(error, ApiError):
        return explain_api_error(connector, error)
    return str(error) if isinstance(error, EXPECTED) else f"{error.__class__.__name__}: {error}"


def _failed(stage: str, connector: Connector, error: Exception) -> str:
    why = _why(connector, error)
    extra = {"connector": connector.name, "error": why}
    if isinstance(error, EXPECTED):
        log.warning(f"sync.{stage}_failed", extra=extra)
    else:
        log.exception(f"sync.{stage}_failed", extra=extra)
    return why


def run(
    runtime: Runtime,
    *,
    full: bool = False,
    only: str | None = None,
    push: bool = True,
    progress: Callable[[Source], Progress] | None = None,
    pulled: Callable[[SourceReport], None] | None = None,
) -> RefreshReport:
    """One refresh cycle (the module's docstring); never raises for one source's or connector's failure.

    ``only``: pull only this connector (the others' stored data still counts, and tags and re-routing
    still cover every connector). ``push``: False leaves out steps 4 and 5 (the demo shows them as the
    scheduler's). ``progress``: makes a progress display per source pulled. ``pulled``: told of each
    source as soon as its pull ended, for a CLI to print while the cycle goes on.
    """
    runtime.refresh_mapping()  # an admin may have published a mapping version since the last run
    store = runtime.store
    report = RefreshReport(full, {name: SourceReport(name) for name in runtime.connectors})
    for connector in runtime.sources.values():
        if only is not None and connector.name != only:
            continue
        source = report.sources[connector.name]
        shown = progress(connector) if progress is not None else None
        try:
            source.pulled = pull(store, connector, full=full, progress=shown, resolve=False)
        except Exception as e:  # the others still pull; the stream state keeps the error
            source.pulled = {}
            source.pull_error = _failed("pull", connector, e)
        finally:
            if shown is not None:
                shown.close()
        if pulled is not None:
            pulled(source)
    report.resolution = resolve_identities(store)
    # Re-route every change since the last re-route: the recompute's, and those the worker recorded when
    # it classified a requester at webhook time. The first run starts from here.
    saved = store.load_model(reroute.BOOKMARK)
    bookmark = int(saved["after"]) if saved else store.last_segment_change()
    report.recomputed = segment_service.recompute(store, runtime.mapping, runtime.mapping_digest)
    if not push:
        return report
    handled = store.last_segment_change()
    rerouted_all = True
    for connector in runtime.connectors.values():
        source = report.sources[connector.name]
        try:
            source.tags = tagsync.push(store, connector, runtime.mapping)
        except Exception as e:  # the stored tags stay as they were: the next cycle tries again
            source.errors.append(f"tag push failed: {_failed('tags', connector, e)}")
        try:
            source.rerouted = reroute.reroute(
                store, connector, runtime.mapping, bookmark, runtime.settings.reroute
            )
        except Exception as e:  # the bookmark stays: the next cycle looks at these changes again
            rerouted_all = False
            source.errors.append(f"re-route failed: {_failed('reroute', connector, e)}")
    if rerouted_all:
        store.save_model(reroute.BOOKMARK, {"after": handled}, datetime.now(UTC))
    return report

"""Wires settings into the parts one process needs: store, queue, mapping and connectors.

Web, worker and scheduler each build one Runtime from the same Settings, whether they share a process
(`tierdesk serve`) or not (the Procfile).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import logging
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from connectors import base as capabilities
from connectors.base import Connector, Helpdesk, Marker, Source, TagTarget
from connectors.freshdesk import FreshdeskConnector
from connectors.freshdesk import UnknownGroup as FreshdeskUnknownGroup
from connectors.http import ApiError, ApiForbidden, ApiUnauthorized, ApiUnavailable
from connectors.zendesk import UnknownGroup as ZendeskUnknownGroup
from connectors.zendesk import ZendeskConnector
from integration import metrics
from integration.core import identity
from integration.core.mapping import MappingError, MappingSpec
from integration.core.mapping_file import parse_mapping
from integration.queue import Queue
from integration.settings import DEFAULT_MAPPING, Settings, SettingsError
from integration.store import Store

log = logging.getLogger("tierdesk")


def load_mapping(path: str | Path) -> tuple[MappingSpec, str]:
    """Read and validate a mapping file; returns the mapping and a digest of its text."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise MappingError(f"cannot read mapping file ({e.strerror})", source=str(path)) from e
    return parse_mapping(text, str(path)), hashlib.sha256(text.encode()).hexdigest()[:16]


def text_digest(text: str) -> str:
    """The digest a mapping text is known by (runtime.mapping_digest, the store's mapping versions)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def active_mapping(
    store: Store, path: str | Path, mapping: MappingSpec, digest: str
) -> tuple[MappingSpec, str]:
    """The mapping this process starts with: the file when it is new or changed since it was last adopted,
    otherwise the version an admin published since (docs/api.md, "Mapping versions")."""
    text = Path(path).read_text(encoding="utf-8")
    version = store.adopt_mapping_file(text, digest, str(path))
    if version.digest == digest:
        return mapping, digest
    try:
        return parse_mapping(version.text, f"mapping version {version.id}"), version.digest
    except MappingError as e:  # published under an older tierdesk that accepted it: fall back to the file
        log.warning("mapping.version_invalid", extra={"version": version.id, "error": str(e)})
        store.publish_mapping_version(
            text, digest, "file", f"version {version.id} no longer validates: {e}", str(path)
        )
        return mapping, digest


def _budget(store: Store, name: str, per_minute: int) -> float:
    return store.take_rate_token(name, per_minute, time.time())


def build_connectors(settings: Settings, marker_tag: Marker) -> dict[str, Connector]:
    connectors: dict[str, Connector] = {}
    if settings.zendesk_configured:
        connectors["zendesk"] = ZendeskConnector(
            settings.zendesk_url or "",
            settings.zendesk_email or "",
            settings.zendesk_token or "",
            settings.zendesk_webhook_secret,
            webhook_tolerance=settings.webhook_tolerance,
            marker_tag=marker_tag,
            timeout=(3.05, settings.http_timeout),
            max_attempts=settings.http_attempts,
            backoff_initial=settings.http_backoff,
        )
    if settings.freshdesk_configured:
        connectors["freshdesk"] = FreshdeskConnector(
            settings.freshdesk_url or "",
            settings.freshdesk_api_key or "",
            settings.freshdesk_webhook_secret,
            marker_tag=marker_tag,
            timeout=(3.05, settings.http_timeout),
            max_attempts=settings.http_attempts,
            backoff_initial=settings.http_backoff,
        )
    connectors.update(build_sources(settings))
    return connectors


def build_sources(settings: Settings) -> dict[str, Connector]:
    """Pull-only sources: HubSpot and CSV/JSON exports. They enrich customers and never route tickets
    (their verify_webhook answers 404 at the webhook gate; the worker never sees their events)."""
    from connectors.csvfile import CsvError, CsvFileConnector
    from connectors.csvfile import load_mapping as load_csv_mapping
    from connectors.hubspot import HubSpotConnector

    sources: dict[str, Connector] = {}
    if settings.hubspot_configured:
        sources["hubspot"] = HubSpotConnector(
            settings.hubspot_token or "",
            settings.hubspot_url,
            segment_property=settings.hubspot_segment_property,
            won_stages=settings.names(settings.hubspot_won_stages),
            timeout=(3.05, settings.http_timeout),
            max_attempts=settings.http_attempts,
            backoff_initial=settings.http_backoff,
        )
    if settings.csv_mapping:
        try:
            specs = load_csv_mapping(settings.csv_mapping)
        except CsvError as e:
            raise SettingsError(f"TIERDESK_CSV_MAPPING: {e}") from e
        for spec in specs:
            sources[spec.name] = CsvFileConnector(spec)
    return sources


def identity_rules(settings: Settings, connectors: dict[str, Connector]) -> identity.Rules:
    """Match rules and attribute precedence from settings; by default CSV exports (in the mapping file's
    order), then HubSpot, then the helpdesks."""
    pull_only = [name for name, c in capabilities.sources(connectors).items() if c.pull_only]
    helpdesks = tuple(dict.fromkeys([*identity.HELPDESKS, *(n for n in connectors if n not in pull_only)]))
    ignored = {d.casefold() for d in settings.names(settings.identity_ignore_domains)}
    precedence = settings.names(settings.identity_precedence)
    if not precedence:
        precedence = tuple(n for n in pull_only if n != "hubspot") + ("hubspot",)
    try:
        return identity.Rules(
            match=settings.names(settings.identity_match),
            helpdesks=helpdesks,
            precedence=precedence,
            ignore_domains=identity.FREE_MAIL | ignored,
        )
    except ValueError as e:
        raise SettingsError(f"TIERDESK_IDENTITY_MATCH: {e}") from e


@dataclass
class Runtime:
    settings: Settings
    store: Store
    queue: Queue
    mapping: MappingSpec
    mapping_digest: str
    connectors: dict[str, Connector] = field(default_factory=dict)
    _mapping_checked: float = field(default=0.0, init=False, repr=False)
    _mapping_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def refresh_mapping(self, max_age: float = 0.0) -> bool:
        """Swap in the store's active mapping when another process published one; True when it changed.

        One indexed read of the active digest; ``max_age`` skips even that when the last look is younger.
        """
        now = time.monotonic()
        if max_age and now - self._mapping_checked < max_age:
            return False
        self._mapping_checked = now
        digest = self.store.active_mapping_digest()
        if digest is None or digest == self.mapping_digest:
            return False
        with self._mapping_lock:
            version = self.store.active_mapping_version()
            if version is None or version.digest == self.mapping_digest:
                return False
            try:
                mapping = parse_mapping(version.text, f"mapping version {version.id}")
            except MappingError as e:  # never published like this; keep routing with what we have
                log.error("mapping.refresh_failed", extra={"version": version.id, "error": str(e)})
                return False
            self.mapping, self.mapping_digest = mapping, version.digest  # the helpdesks' marker follows
        log.info("mapping.refreshed", extra={"version": version.id, "digest": version.digest})
        return True

    @classmethod
    def from_settings(cls, settings: Settings, *, webhooks: bool = True) -> Runtime:
        """Fail fast: bad settings or a broken mapping stop the process before it serves anything.

        ``webhooks``: False for commands that never accept a webhook (sync, jobs, setup), which then
        need no webhook secret."""
        settings.check(webhooks=webhooks)
        mapping, digest = read_mapping(settings)
        store = open_store(settings)
        mapping, digest = active_mapping(store, settings.mappings, mapping, digest)
        queue = open_queue(settings, store)

        def marker() -> str:  # the routed marker of the mapping this runtime routes with, read at each use
            return runtime.mapping.tags.routed

        connectors = build_connectors(settings, marker)
        store.identity_rules = identity_rules(settings, connectors)
        limits = {"zendesk": settings.zendesk_rate_limit, "freshdesk": settings.freshdesk_rate_limit}
        for name, connector in connectors.items():
            http = connector.http
            if http is None:
                continue
            http.observer = metrics.observe_api
            limit = limits.get(name, 0)
            if limit > 0:
                http.throttle = functools.partial(_budget, store, f"api:{name}", limit)
        runtime = cls(settings, store, queue, mapping, digest, connectors)
        return runtime

    @property
    def sources(self) -> dict[str, Source]:
        """The connectors to pull from."""
        return capabilities.sources(self.connectors)

    @property
    def helpdesks(self) -> dict[str, Helpdesk]:
        """The connectors that route tickets: webhooks, the worker, re-routing, group checks."""
        return capabilities.helpdesks(self.connectors)

    @property
    def tag_targets(self) -> dict[str, TagTarget]:
        """The connectors segment tags are written back to."""
        return capabilities.tag_targets(self.connectors)

    @classmethod
    def local(cls, settings: Settings) -> Runtime:
        """The store, queue and mapping without any connector: for commands that work on stored data
        alone (`tierdesk segment`), which need TIERDESK_DB and nothing about the helpdesks."""
        mapping, digest = read_mapping(settings)
        store = open_store(settings, must_exist=True)
        mapping, digest = active_mapping(store, settings.mappings, mapping, digest)
        return cls(settings, store, open_queue(settings, store), mapping, digest, {})


# -- start-up: every problem names the variable, its value and the fix ------------------------------------


def open_store(settings: Settings, *, must_exist: bool = False) -> Store:
    """The store at TIERDESK_DB, or a SettingsError saying what is wrong with the path and what to do."""
    settings.check_db(must_exist=must_exist)
    try:
        return Store(settings.db)
    except (sqlite3.Error, OSError) as e:
        raise SettingsError(
            f"TIERDESK_DB={settings.db}: cannot open it as tierdesk's database ({e}). Point TIERDESK_DB at "
            "tierdesk's database file, or at a new path to create one there"
        ) from e


def open_queue(settings: Settings, store: Store) -> Queue:
    return Queue(
        store,
        lease_seconds=settings.lease_seconds,
        max_attempts=settings.max_attempts,
        retry_base=settings.retry_base,
        retry_max=settings.retry_max,
    )


def read_mapping(settings: Settings) -> tuple[MappingSpec, str]:
    """The mapping file at TIERDESK_MAPPINGS; a file that cannot be read names the variable, a file
    that does not validate names its own line and key (MappingError)."""
    try:
        return load_mapping(settings.mappings)
    except MappingError as e:
        if not isinstance(e.__cause__, OSError):
            raise
        raise SettingsError(
            f"TIERDESK_MAPPINGS={settings.mappings}: cannot read the mapping file "
            f"({e.__cause__.strerror or e.__cause__}). Point it at your mapping YAML, or unset it to use "
            f"the default ({DEFAULT_MAPPING})"
        ) from e


TITLES = {"zendesk": "Zendesk", "freshdesk": "Freshdesk", "hubspot": "HubSpot"}
# Per connector: the variable holding its address, and the ones holding its credentials.
VARIABLES = {
    "zendesk": ("TIERDESK_ZENDESK_URL", "TIERDESK_ZENDESK_EMAIL and TIERDESK_ZENDESK_TOKEN"),
    "freshdesk": ("TIERDESK_FRESHDESK_URL", "TIERDESK_FRESHDESK_API_KEY"),
    "hubspot": ("TIERDESK_HUBSPOT_URL", "TIERDESK_HUBSPOT_TOKEN"),
}
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def _transport_reason(error: BaseException) -> str:
    """The words that help ("Connection refused", "Name or service not known"), not the pool's repr."""
    cause = error.__cause__ or error
    text = str(cause)
    found = _ERRNO.search(text)
    if found:
        return found.group(1).strip().rstrip(".")
    if "timed out" in text.lower():
        return "timed out"
    return cause.__class__.__name__


def explain_api_error(connector: Connector, error: ApiError) -> str:
    """One line a person can act on for a failed call at start or in a sync: which service, which
    address, and which TIERDESK_* variable to look at."""
    name = connector.name
    title = TITLES.get(name, name)
    base = connector.http.base_url if connector.http is not None else ""
    host = urlsplit(base).netloc or base or name
    url_var, secret_vars = VARIABLES.get(name, ("", ""))
    if isinstance(error, ApiUnavailable):
        where = f" (check {url_var}={base})" if url_var else ""
        return f"cannot reach {title} at {host}: {_transport_reason(error)}{where}"
    if isinstance(error, ApiUnauthorized):
        return (
            f"{title} at {host} refused our credentials (401): check {secret_vars}"
            if secret_vars
            else f"{title} at {host} refused our credentials (401): {error}"
        )
    if isinstance(error, ApiForbidden):
        return (
            f"{title} at {host} answered 403: the credentials in {secret_vars} work but lack a "
            f"permission tierdesk needs ({error})"
        )
    return str(error)


def _mapping_line(text: str, name: str) -> int | None:
    """The line where the mapping sets ``group`` to ``name`` (else any line naming it), comments aside."""
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    for wanted in (lambda code: "group" in code and name in code, lambda code: name in code):
        for number, code in enumerate(lines, start=1):
            if wanted(code):
                return number
    return None


def unknown_groups_message(runtime: Runtime, connector: Connector, known: list[str]) -> str:
    """Each mapped group the helpdesk lacks, with where the mapping names it and the closest real name."""
    title = TITLES.get(connector.name, connector.name)
    version = runtime.store.active_mapping_version()
    text = version.text if version is not None else ""
    source = runtime.mapping.source
    folded = {group.casefold(): group for group in known}
    parts = []
    for name in sorted(n for n in runtime.mapping.groups if n not in known):
        line = _mapping_line(text, name)
        where = f"{source}:{line}" if line else source
        close = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.6)
        hint = f"; did you mean {folded[close[0]]!r}?" if close else ""
        parts.append(f"{where}: group {name!r} does not exist in {title}{hint}")
    has = ", ".join(sorted(known)) or "none"
    return "; ".join(parts) + f" ({title} has: {has}). Fix the mapping, or create the group in {title}"


def check_helpdesks(runtime: Runtime) -> None:
    """Reach every connector once at start: a wrong token, an unreachable host or a mapped group the
    helpdesk lacks stops the process here, with one line that says what to fix."""
    for connector in runtime.helpdesks.values():
        try:
            connector.check_groups(set(runtime.mapping.groups))
        except (ZendeskUnknownGroup, FreshdeskUnknownGroup) as e:
            known = list(connector.groups())  # cached by check_groups
            raise SettingsError(unknown_groups_message(runtime, connector, known)) from e
        except ApiError as e:
            raise SettingsError(explain_api_error(connector, e)) from e

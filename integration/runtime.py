"""Wires settings into the parts one process needs: store, queue, mapping and connectors.

Web, worker and scheduler each build one Runtime from the same Settings, whether they share a process
(`tierdesk serve`) or not (the Procfile).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from connectors.base import Connector
from connectors.freshdesk import FreshdeskConnector
from connectors.zendesk import ZendeskConnector
from integration import identity, metrics
from integration.mapping import Mapping, MappingError, parse_mapping
from integration.queue import Queue
from integration.settings import Settings, SettingsError
from integration.store import Store

log = logging.getLogger("tierdesk")


def load_mapping(path: str | Path) -> tuple[Mapping, str]:
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


def active_mapping(store: Store, path: str | Path, mapping: Mapping, digest: str) -> tuple[Mapping, str]:
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


def build_connectors(settings: Settings, marker_tag: str) -> dict[str, Connector]:
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
        sources["hubspot"] = HubSpotConnector(  # type: ignore[assignment]
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
            sources[spec.name] = CsvFileConnector(spec)  # type: ignore[assignment]
    return sources


def identity_rules(settings: Settings, connectors: dict[str, Connector]) -> identity.Rules:
    """Match rules and attribute precedence from settings; by default CSV exports (in the mapping file's
    order), then HubSpot, then the helpdesks."""
    pull_only = [name for name, c in connectors.items() if getattr(c, "pull_only", False)]
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
    mapping: Mapping
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
            self.mapping, self.mapping_digest = mapping, version.digest
            for connector in self.connectors.values():
                if hasattr(connector, "marker_tag"):
                    connector.marker_tag = mapping.tags.routed
        log.info("mapping.refreshed", extra={"version": version.id, "digest": version.digest})
        return True

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        """Fail fast: bad settings or a broken mapping stop the process before it serves anything."""
        settings.check()
        mapping, digest = load_mapping(settings.mappings)
        store = Store(settings.db)
        mapping, digest = active_mapping(store, settings.mappings, mapping, digest)
        queue = Queue(
            store,
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.max_attempts,
            retry_base=settings.retry_base,
            retry_max=settings.retry_max,
        )
        connectors = build_connectors(settings, mapping.tags.routed)
        store.identity_rules = identity_rules(settings, connectors)
        limits = {"zendesk": settings.zendesk_rate_limit, "freshdesk": settings.freshdesk_rate_limit}
        for name, connector in connectors.items():
            http = getattr(connector, "http", None)
            if http is None:
                continue
            http.observer = metrics.observe_api
            limit = limits.get(name, 0)
            if limit > 0:
                http.throttle = functools.partial(_budget, store, f"api:{name}", limit)
        return cls(settings, store, queue, mapping, digest, connectors)

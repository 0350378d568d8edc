"""Every knob, read once from the environment (TIERDESK_*). Nothing else reads os.environ."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

DEFAULT_MAPPING = Path(__file__).resolve().parent.parent / "mappings" / "default.yaml"

# The range each numeric setting must fall in, and its unit, so a value that parses but makes no sense
# (TIERDESK_WEBHOOK_TOLERANCE=nan turns the freshness check off: every comparison with nan is false;
# a negative lease, zero attempts) stops the start with the variable's name instead.
LIMITS: dict[str, tuple[float, float, str]] = {
    "webhook_tolerance": (1, 3600, "seconds"),
    "max_body_bytes": (1024, 64 << 20, "bytes"),
    "http_timeout": (0.01, 600, "seconds"),
    "http_attempts": (1, 20, "attempts"),
    "http_backoff": (0, 60, "seconds"),
    "zendesk_rate_limit": (0, 1_000_000, "requests a minute (0: no budget)"),
    "freshdesk_rate_limit": (0, 1_000_000, "requests a minute (0: no budget)"),
    "max_attempts": (1, 1000, "attempts"),
    "retry_base": (0.001, 86400, "seconds"),
    "retry_max": (0.001, 7 * 86400, "seconds"),
    "lease_seconds": (0.1, 86400, "seconds"),
    "worker_threads": (0, 256, "threads"),
    "worker_poll": (0.001, 60, "seconds"),
    "sync_interval": (1, 30 * 86400, "seconds"),
    "sweep_interval": (1, 86400, "seconds"),
    "refit_interval": (0.1, 3600, "seconds"),
    "proxy_hops": (0, 10, "proxies"),
}


class SettingsError(ValueError):
    """The environment asks for something we cannot run with."""


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    db: str = "tierdesk.db"
    mappings: str = str(DEFAULT_MAPPING)
    zendesk_url: str | None = None
    zendesk_email: str | None = None
    zendesk_token: str | None = None
    zendesk_webhook_secret: str | None = None
    freshdesk_url: str | None = None
    freshdesk_api_key: str | None = None
    freshdesk_webhook_secret: str | None = None
    hubspot_url: str = "https://api.hubapi.com"
    hubspot_token: str | None = None
    hubspot_segment_property: str = "tierdesk_segment"
    hubspot_won_stages: str = "closedwon"
    csv_mapping: str | None = None
    identity_match: str = "external_id,email,domain"
    identity_precedence: str = ""
    identity_ignore_domains: str = ""
    insecure_dev: bool = False
    webhook_tolerance: float = 300.0
    max_body_bytes: int = 256 * 1024
    http_timeout: float = 10.0
    http_attempts: int = 4
    http_backoff: float = 0.5
    zendesk_rate_limit: int = 700
    freshdesk_rate_limit: int = 200
    max_attempts: int = 8
    retry_base: float = 2.0
    retry_max: float = 300.0
    lease_seconds: float = 60.0
    worker_threads: int = 2
    worker_poll: float = 0.05
    sync_interval: float = 300.0
    recompute_cron: str = "0 3 * * *"
    sweep_interval: float = 60.0
    refit_interval: float = 5.0
    reroute: str = "priority"
    # Retention in days (0 keeps forever); the daily `prune` job deletes what is older (docs/operations.md)
    retain_events_days: float = 30.0  # done queue events and finished job runs
    retain_dead_days: float = 90.0  # dead events not replayed by then
    retain_decisions_days: float = 365.0  # decisions, except those of tickets still open
    retain_segment_changes_days: float = 730.0  # label history (the drift chart reaches back 730 days)
    prune_cron: str = "30 4 * * *"
    log_level: str | None = None  # unset: INFO for the long-running roles, WARNING for one-shot commands
    admin_user: str = "admin"
    admin_password: str | None = None
    admin_token: str | None = None
    secret_key: str | None = None
    proxy_hops: int = 0

    def __post_init__(self) -> None:
        for name, (low, high, unit) in LIMITS.items():
            value = getattr(self, name, None)
            if value is None:
                continue
            variable = f"TIERDESK_{name.upper()}"
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SettingsError(f"{variable}={value!r}: expected a number of {unit}")
            if not math.isfinite(value) or not low <= value <= high:
                raise SettingsError(
                    f"{variable}={value!r}: expected a number of {unit} from {low:g} to {high:g}"
                )
        if self.retry_max < self.retry_base:
            raise SettingsError(
                f"TIERDESK_RETRY_MAX={self.retry_max!r} is below TIERDESK_RETRY_BASE={self.retry_base!r}: "
                "the longest wait between retries cannot be shorter than the first"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from TIERDESK_* variables; the name of each is TIERDESK_ + field upper-cased."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"TIERDESK_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            try:
                if kind.startswith("bool"):
                    values[f.name] = _flag(raw)
                elif kind.startswith("int"):
                    values[f.name] = int(raw)
                elif kind.startswith("float"):
                    values[f.name] = float(raw)
                else:
                    values[f.name] = raw
            except ValueError as e:
                raise SettingsError(f"TIERDESK_{f.name.upper()}={raw!r}: expected {kind}") from e
        return cls(**values)  # type: ignore[arg-type]

    @property
    def zendesk_configured(self) -> bool:
        return bool(self.zendesk_url and self.zendesk_email and self.zendesk_token)

    @property
    def hubspot_configured(self) -> bool:
        return bool(self.hubspot_token)

    @staticmethod
    def names(value: str) -> tuple[str, ...]:
        """A comma-separated setting as a tuple of trimmed, non-empty names."""
        return tuple(n.strip() for n in value.split(",") if n.strip())

    def retention(self) -> dict[str, float]:
        """The retention settings by field name (days; 0 keeps forever)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name.startswith("retain_")}

    @property
    def freshdesk_configured(self) -> bool:
        return bool(self.freshdesk_url and self.freshdesk_api_key)

    def check_db(self, *, must_exist: bool = False) -> None:
        """Say what is wrong with TIERDESK_DB, and how to fix it, before SQLite fails with a bare
        "unable to open database file". ``must_exist``: for commands that only look at a store, where
        creating an empty database would only hide a wrong path."""
        path = Path(self.db).expanduser()
        shown = f"TIERDESK_DB={self.db}"
        if path.is_dir():
            raise SettingsError(
                f"{shown} is a directory, not a database file. Name a file, "
                f"e.g. TIERDESK_DB={path / 'tierdesk.db'}"
            )
        parent = path.parent
        if not parent.exists():
            raise SettingsError(
                f"{shown}: the directory {parent} does not exist. Create it (mkdir -p {parent}) "
                "or point TIERDESK_DB at a file in an existing directory"
            )
        if not parent.is_dir():
            raise SettingsError(f"{shown}: {parent} is not a directory. Point TIERDESK_DB at a file path")
        if must_exist and not path.exists():
            raise SettingsError(
                f"{shown}: there is no database at {path.resolve()}. Set TIERDESK_DB to the database "
                "tierdesk uses (`tierdesk demo` prints its line), or run `tierdesk sync` to create one"
            )
        if not os.access(parent, os.W_OK | os.X_OK):
            raise SettingsError(
                f"{shown}: the directory {parent} is not writable by this user (SQLite writes its "
                "journal and lock files beside the database). Fix its permissions or choose another path"
            )

    def check(self, *, webhooks: bool = True) -> None:
        """Refuse to serve webhooks nobody can authenticate, unless a developer said so out loud.

        At least one helpdesk must be configured; with ``webhooks`` (every role that may accept them),
        each configured one needs its webhook secret.
        """
        if self.reroute not in ("off", "priority", "all"):
            raise SettingsError(f"TIERDESK_REROUTE={self.reroute!r}: expected off, priority or all")
        for name, days in self.retention().items():
            if not days >= 0:  # also refuses nan
                raise SettingsError(
                    f"TIERDESK_{name.upper()}={days!r}: expected a number of days, 0 to keep forever"
                )
        unsigned_ok = self.insecure_dev or not webhooks
        if self.zendesk_configured and not self.zendesk_webhook_secret and not unsigned_ok:
            raise SettingsError(
                "TIERDESK_ZENDESK_WEBHOOK_SECRET is not set: refusing to accept unsigned webhooks. "
                "Set it to the webhook's signing secret, or set TIERDESK_INSECURE_DEV=1 for local "
                "development only."
            )
        if self.freshdesk_configured and not self.freshdesk_webhook_secret and not unsigned_ok:
            raise SettingsError(
                "TIERDESK_FRESHDESK_WEBHOOK_SECRET is not set: Freshdesk does not sign webhooks, so "
                "tierdesk refuses them without the shared secret the automation rule sends. Set it, or "
                "set TIERDESK_INSECURE_DEV=1 for local development only."
            )
        if not (self.zendesk_configured or self.freshdesk_configured) and not self.insecure_dev:
            missing = [
                name
                for name, value in (
                    ("TIERDESK_ZENDESK_URL", self.zendesk_url),
                    ("TIERDESK_ZENDESK_EMAIL", self.zendesk_email),
                    ("TIERDESK_ZENDESK_TOKEN", self.zendesk_token),
                )
                if not value
            ]
            raise SettingsError(
                f"No helpdesk is configured: for Zendesk set {', '.join(missing)}; for Freshdesk set "
                "TIERDESK_FRESHDESK_URL and TIERDESK_FRESHDESK_API_KEY"
            )

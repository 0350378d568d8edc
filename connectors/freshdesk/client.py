"""Freshdesk's responses beyond the JSON body: the Link header and the rate-limit headers."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

log = logging.getLogger("tierdesk.freshdesk")

RATE_LOW_SHARE = 0.1  # log once when fewer than 10% of the minute's API credits are left


class ResponseTap:
    """Keeps the last response each thread saw, so pagination can read its Link header.

    HttpClient returns decoded JSON only; a requests response hook is the seam that sees the headers
    without a second HTTP layer. Also watches X-RateLimit-Remaining and logs once when it runs low.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self.total: int | None = None
        self.remaining: int | None = None
        self._warned = False

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._local.response = response
        try:
            self.total = int(response.headers["X-RateLimit-Total"])
            self.remaining = int(response.headers["X-RateLimit-Remaining"])
        except (KeyError, ValueError):
            return
        low = self.remaining < self.total * RATE_LOW_SHARE
        if low and not self._warned:
            log.warning("freshdesk.rate_low", extra={"remaining": self.remaining, "total": self.total})
        self._warned = low

    @property
    def last(self) -> requests.Response | None:
        return getattr(self._local, "response", None)

    def next_url(self) -> str | None:
        response = self.last
        return (response.links.get("next") or {}).get("url") if response is not None else None

    def server_time(self) -> datetime | None:
        response = self.last
        value = response.headers.get("Date") if response is not None else None
        try:
            return parsedate_to_datetime(value).astimezone(UTC) if value else None
        except (TypeError, ValueError):
            return None

    def error_details(self) -> str:
        """Freshdesk's validation errors list, which the shared error text leaves out."""
        response = self.last
        if response is None:
            return ""
        try:
            errors = response.json().get("errors")
        except (ValueError, AttributeError):
            return ""
        if not isinstance(errors, list):
            return ""
        return "; ".join(
            f"{e.get('field', '?')}: {e.get('message', '')} ({e.get('code', '')})"
            for e in errors
            if isinstance(e, dict)
        )

"""POST /webhooks/<source>: a thin gate that answers fast and loses nothing.

Checks run in a fixed order, each rejection with its own status, JSON message and named log event:
known source (404) -> body size (413) -> body as long as announced (400) -> signature and freshness (401)
-> JSON and ticket fields (400) -> already routed by us (200, ignored) -> written to this process's
inbox (before we answer; 503 if it cannot be) -> 202. A repeated delivery is answered 202 too: the
worker drops it when it moves the inbox into the queue (integration/inbox.py).
"""

from __future__ import annotations

import json
import logging
import time

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from connectors.base import WebhookRejected
from integration import metrics
from integration.runtime import Runtime

log = logging.getLogger("tierdesk.webhooks")
bp = Blueprint("webhooks", __name__)


def _reject(source: str, reason: str, message: str, status: int) -> ResponseReturnValue:
    metrics.WEBHOOKS_REJECTED.labels(source, reason).inc()
    log.warning(
        f"{source}.webhook.{reason}",
        extra={"source": source, "status": status, "remote": request.remote_addr},
    )
    return jsonify(error=reason, message=message), status


@bp.post("/webhooks/<source>")
def receive(source: str) -> ResponseReturnValue:
    runtime: Runtime = current_app.extensions["tierdesk"]
    runtime.refresh_mapping(max_age=5.0)  # the routed marker comes from the active mapping version
    connector = runtime.helpdesks.get(source)
    if source not in runtime.connectors:  # label it "unknown": a caller must not mint metric labels
        metrics.WEBHOOKS_RECEIVED.labels("unknown").inc()
        return _reject("unknown", "unknown_source", f"no webhook source named {source[:40]!r}", 404)
    metrics.WEBHOOKS_RECEIVED.labels(source).inc()
    if connector is None:  # a CRM or a file export: it only enriches customers
        return _reject(source, "unknown_source", f"{source} is a pull-only source; it has no webhook", 404)
    limit = runtime.settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _reject(source, "too_large", f"body larger than {limit} bytes", 413)
    body = request.get_data(cache=False)
    if len(body) > limit:
        return _reject(source, "too_large", f"body larger than {limit} bytes", 413)
    if request.content_length is not None and len(body) != request.content_length:
        # gunicorn hands over what arrived before the client hung up; a cut-off request is not a delivery
        return _reject(
            source, "incomplete_body", f"body ended after {len(body)} of {request.content_length} bytes", 400
        )
    headers = request.headers  # werkzeug's headers: .get() ignores case, no copy needed
    try:
        connector.verify_webhook(headers, body, time.time())
        event = connector.parse_webhook(headers, body)
    except WebhookRejected as e:
        return _reject(source, e.reason, e.message, e.status)
    if runtime.mapping.tags.routed in event.tags:  # our own update echoed back by an update trigger
        metrics.WEBHOOKS_DUPLICATE.labels(source).inc()
        log.info(f"{source}.webhook.ignored_routed", extra={"ticket": event.ticket_id})
        return jsonify(status="ignored", reason="ticket already routed by tierdesk"), 200
    payload = {
        "ticket_id": event.ticket_id,
        "requester_id": event.requester_id,
        "organization_id": event.organization_id,
        "tags": list(event.tags),
    }
    if event.replay_key:  # the queue keeps one event per signed delivery, whatever its delivery id says
        payload["replay_key"] = event.replay_key
    try:
        runtime.queue.accept(event, payload)
    except OSError as e:  # disk full or the inbox unwritable: not acknowledged, so the helpdesk retries
        log.error(f"{source}.webhook.unrecorded", extra={"ticket": event.ticket_id, "error": str(e)})
        return jsonify(error="unavailable", message="could not record the delivery; retry later"), 503
    # Accepted deliveries log at DEBUG: the hot path's one JSON line cost more than the HMAC check.
    # The worker logs the same ids when it moves the delivery into the queue and when it routes it.
    if log.isEnabledFor(logging.DEBUG):
        log.debug(f"{source}.webhook.accepted", extra={"ticket": event.ticket_id, "delivery": event.event_id})
    metrics.WEBHOOKS_ACCEPTED.labels(source).inc()
    return Response(
        f'{{"delivery":{json.dumps(event.event_id)},"status":"queued"}}', 202, mimetype="application/json"
    )

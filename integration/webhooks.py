"""POST /webhooks/<source>: a thin gate that answers fast and loses nothing.

Checks run in a fixed order, each rejection with its own status, JSON message and named log event:
known source (404) -> body size (413) -> body as long as announced (400) -> signature and freshness (401)
-> JSON and ticket fields (400) -> already routed by us (200, ignored) -> enqueue (committed before we
answer) -> 202, or 200 for a delivery we already have.
"""

from __future__ import annotations

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
    connector = runtime.connectors.get(source)
    if connector is None:  # label it "unknown": a caller must not be able to mint metric labels
        metrics.WEBHOOKS_RECEIVED.labels("unknown").inc()
        return _reject("unknown", "unknown_source", f"no webhook source named {source[:40]!r}", 404)
    metrics.WEBHOOKS_RECEIVED.labels(source).inc()
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
    event_id, created = runtime.queue.put(event, payload)
    # Accepted deliveries log at DEBUG: the hot path's one JSON line cost more than the HMAC check.
    # The event row (received_at) and the worker's INFO line carry the same ids.
    log.log(
        logging.DEBUG if created else logging.INFO,
        f"{source}.webhook.{'accepted' if created else 'duplicate'}",
        # not "event": that key is the log line's name, and an extra under it would overwrite the name
        extra={"event_id": event_id, "ticket": event.ticket_id, "delivery": event.event_id},
    )
    if not created:
        metrics.WEBHOOKS_DUPLICATE.labels(source).inc()
        return _answer("duplicate", event_id, 200)
    metrics.WEBHOOKS_ACCEPTED.labels(source).inc()
    return _answer("queued", event_id, 202)


def _answer(status: str, event_id: int, code: int) -> Response:
    """The acknowledgement, written directly: jsonify's generality costs on a path that runs per webhook."""
    return Response(f'{{"event":{int(event_id)},"status":"{status}"}}', code, mimetype="application/json")

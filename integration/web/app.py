"""Flask app factory: create_app(settings) wires the runtime and registers the blueprints.

The scheduler and the workers never start here: gunicorn would start a copy in every worker process.
They run as their own processes (Procfile) or beside the server in `tierdesk serve`.
"""

from __future__ import annotations

import time

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from integration import logs, metrics
from integration.runtime import Runtime
from integration.settings import Settings


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    if runtime is None:
        settings = settings or Settings.from_env()
        logs.setup(settings.log_level)
        runtime = Runtime.from_settings(settings)
    app = Flask(__name__)
    hops = runtime.settings.proxy_hops
    if hops:  # behind that many proxies: the client address, scheme and host are the ones they forward
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    # One byte past the limit: werkzeug silently stops a chunked body AT this size, so the gate must be able
    # to read one byte more to see that it was too large (413) rather than judge a truncated body.
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.max_body_bytes + 1
    app.extensions["tierdesk"] = runtime

    from integration.web import admin, webhooks

    app.register_blueprint(webhooks.bp)
    admin.init_app(app)  # /admin pages and the /api JSON API, both behind the admin's sign-in

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> ResponseReturnValue:
        """Ready when deliveries can be accepted (the inbox is writable) and the store answers.

        Unauthenticated and polled often, so it never takes the write lock: the store is read through a
        probe with a one-second bound (Store.probe), and the inbox by its listing plus one line per web
        process. A long write elsewhere (a recompute, a backlog move) does not hold it up.
        """
        health = runtime.queue.health(time.time())
        ready = health["answering"] and health["writable"] and health["inbox"]["writable"]
        body = {
            "status": "ok" if ready else "unavailable",
            "store_writable": health["answering"] and health["writable"],
            "queue": health.get("queue", {}),
            "inbox": health["inbox"],
            "oldest_pending_seconds": health["oldest_pending_seconds"],
        }
        if "error" in health:
            body["error"] = health["error"]
        return jsonify(body), 200 if ready else 503

    @app.get("/metrics")
    def prometheus() -> ResponseReturnValue:
        return metrics.render(runtime.queue.health), 200, {"Content-Type": metrics.CONTENT_TYPE}

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> ResponseReturnValue:
        return jsonify(error=(e.name or "error").lower().replace(" ", "_"), message=e.description), (
            e.code or 500
        )

    return app

"""The baseline for bench/webhooks.py: a Flask endpoint that does nothing and answers 204."""

from flask import Flask

app = Flask(__name__)


@app.post("/webhooks/zendesk")
def receive() -> tuple[str, int]:
    return "", 204


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}

"""The `tierdesk` command as an operator uses it, and the docs that describe it."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from integration.cli import main
from integration.models import TicketEvent
from integration.settings import Settings
from tests.conftest import Live

ROOT = Path(__file__).resolve().parent.parent


def _env(settings: Settings) -> dict[str, str]:
    return {
        "TIERDESK_DB": settings.db,
        "TIERDESK_MAPPINGS": settings.mappings,
        "TIERDESK_ZENDESK_URL": settings.zendesk_url or "",
        "TIERDESK_ZENDESK_EMAIL": settings.zendesk_email or "",
        "TIERDESK_ZENDESK_TOKEN": settings.zendesk_token or "",
        "TIERDESK_ZENDESK_WEBHOOK_SECRET": settings.zendesk_webhook_secret or "",
        "TIERDESK_LOG_LEVEL": "ERROR",
    }


def test_queue_lists_dead_events_and_retry_replays_one(live: Live) -> None:
    queue = live.runtime.queue
    event_id, _ = queue.put(TicketEvent("zendesk", "d1", "424242"), {})
    event = queue.claim("w")
    assert event is not None
    queue.failed(event, "zendesk: ticket 424242 no longer exists", retriable=False)
    runner = CliRunner()
    env = _env(live.runtime.settings)
    listed = runner.invoke(main, ["queue"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "dead" in listed.output
    assert "424242 no longer exists" in listed.output
    replayed = runner.invoke(main, ["queue", "retry", str(event_id)], env=env)
    assert replayed.exit_code == 0, replayed.output
    assert live.runtime.store.get_event(event_id).status == "pending"
    missing = runner.invoke(main, ["queue", "retry", "999"], env=env)
    assert missing.exit_code != 0
    assert "999" in missing.output


def test_queue_names_acknowledged_webhooks_no_worker_has_moved(live: Live) -> None:
    runner = CliRunner()
    env = _env(live.runtime.settings)
    assert runner.invoke(main, ["queue"], env=env).output.splitlines() == ["queue: empty"]
    live.runtime.queue.accept(TicketEvent("zendesk", "d7", "7"), {"ticket_id": "7"})
    listed = runner.invoke(main, ["queue"], env=env).output
    assert "queue: empty" in listed
    assert "not yet moved into the queue" in listed


def test_sync_and_segment_print_what_they_did(live: Live) -> None:
    runner = CliRunner()
    env = _env(live.runtime.settings)
    synced = runner.invoke(main, ["sync", "--full"], env=env)
    assert synced.exit_code == 0, synced.output
    assert re.search(r"zendesk: organizations \d+, users 120, tickets \d+", synced.output)
    segmented = runner.invoke(main, ["segment"], env=env)
    assert segmented.exit_code == 0, segmented.output
    assert "120 customers" in segmented.output
    assert "tier" in segmented.output


def test_broken_mapping_is_refused_naming_file_line_and_key(live: Live, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    text = (ROOT / "mappings" / "default.yaml").read_text()
    assert "bands:" in text
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if "weights:" in line)
    # give the first weight a non-numeric value
    for j in range(index + 1, len(lines)):
        if ":" in lines[j] and lines[j].strip() and not lines[j].strip().startswith("#"):
            key = lines[j].split(":")[0]
            lines[j] = f"{key}: lots"
            line_number = j + 1
            break
    broken.write_text("\n".join(lines) + "\n")
    env = {**_env(live.runtime.settings), "TIERDESK_MAPPINGS": str(broken)}
    result = CliRunner().invoke(main, ["segment"], env=env)
    assert result.exit_code != 0
    assert f"broken.yaml:{line_number}" in result.output
    assert "weights" in result.output


def test_missing_secret_is_refused_at_start(live: Live) -> None:
    env = {**_env(live.runtime.settings), "TIERDESK_ZENDESK_WEBHOOK_SECRET": ""}
    result = CliRunner().invoke(main, ["worker"], env=env)
    assert result.exit_code != 0
    assert "TIERDESK_ZENDESK_WEBHOOK_SECRET" in result.output


@pytest.mark.parametrize("field", [f.name for f in fields(Settings)])
def test_every_setting_is_documented_in_the_readme(field: str) -> None:
    assert f"`TIERDESK_{field.upper()}`" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_is_documented_in_the_readme(command: str) -> None:
    assert f"`tierdesk {command}" in (ROOT / "README.md").read_text()


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text()[:400]
    assert "make demo" in head
    assert "make test" in head

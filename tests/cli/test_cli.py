"""The `tierdesk` command as an operator uses it, and the docs that describe it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from integration.cli.commands import main
from integration.core.models import TicketEvent
from integration.settings import Settings
from integration.worker import Worker
from sandbox.zendesk import ZendeskSandbox
from tests.support import EMAIL, ROOT, TOKEN, Live, free_port, post_webhook, run_tierdesk, settings_env


def test_queue_lists_dead_events_and_retry_replays_one(live: Live) -> None:
    queue = live.runtime.queue
    event_id, _ = queue.put(TicketEvent("zendesk", "d1", "424242"), {})
    event = queue.claim("w")
    assert event is not None
    queue.failed(event, "zendesk: ticket 424242 no longer exists", retriable=False)
    runner = CliRunner()
    env = settings_env(live.runtime.settings)
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
    env = settings_env(live.runtime.settings)
    assert runner.invoke(main, ["queue"], env=env).output.splitlines() == ["queue: empty"]
    live.runtime.queue.accept(TicketEvent("zendesk", "d7", "7"), {"ticket_id": "7"})
    listed = runner.invoke(main, ["queue"], env=env).output
    assert "queue: empty" in listed
    assert "not yet moved into the queue" in listed


def test_sync_and_segment_print_what_they_did(live: Live) -> None:
    runner = CliRunner()
    env = settings_env(live.runtime.settings)
    synced = runner.invoke(main, ["sync", "--full"], env=env)
    assert synced.exit_code == 0, synced.output
    assert re.search(r"zendesk: organizations \d+, users 120, tickets \d+", synced.output)
    # the scheduler's cycle: segment tags pushed (every user the first time), re-routing looked at
    assert re.search(
        r"tags: zendesk \d+ users, \d+ organizations to change, [1-9]\d* write calls", synced.output
    )
    assert "re-routed: 0 open ticket(s)" in synced.output
    (run,) = live.runtime.store.list_job_runs()  # recorded as the scheduler's full refresh is
    assert (run["job"], run["status"]) == ("recompute", "done")
    assert run["counts"]["tags_zendesk"]["planned"]["users"] == 120
    again = runner.invoke(main, ["sync"], env=env)
    assert again.exit_code == 0, again.output
    assert "tags: zendesk 0 users, 0 organizations to change, 0 write calls" in again.output
    held = live.runtime.store.acquire_lock("job:refresh", "a-scheduler", 60)  # a scheduled sync runs
    assert held
    refused = runner.invoke(main, ["sync"], env=env)
    assert refused.exit_code != 0
    assert "another process is refreshing now" in refused.output
    live.runtime.store.release_lock("job:refresh", "a-scheduler")
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
    env = {**settings_env(live.runtime.settings), "TIERDESK_MAPPINGS": str(broken)}
    result = CliRunner().invoke(main, ["segment"], env=env)
    assert result.exit_code != 0
    assert f"broken.yaml:{line_number}" in result.output
    assert "weights" in result.output


def test_missing_secret_is_refused_at_start(live: Live) -> None:
    env = {**settings_env(live.runtime.settings), "TIERDESK_ZENDESK_WEBHOOK_SECRET": ""}
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


# -- what a new user meets first: commands that look at a store, start-up errors, logs ----------------------


def test_commands_that_look_at_the_store_need_only_tierdesk_db(live: Live) -> None:
    store = live.runtime.store
    secret = live.runtime.settings.zendesk_webhook_secret or ""
    post_webhook(live.url, {"ticket": {"id": "909090"}}, secret=secret)  # Zendesk has no such ticket
    outcome = Worker(live.runtime).run_once()
    assert outcome is not None
    assert outcome.status == "dead"
    (event,) = store.list_events(["dead"])
    event_id = event.id
    run_id = store.start_job_run("sync", "test", 1_700_000_000.0)
    store.finish_job_run(run_id, "ok", {"users": 120}, 7, None, 1_700_000_002.5)
    env = {"TIERDESK_DB": live.runtime.settings.db}  # no helpdesk, no credentials, no webhook secret

    status = run_tierdesk("sync", "--status", env=env)
    assert status.returncode == 0, status.stderr
    assert any(line.split()[:3] == ["zendesk", "users", "ok"] for line in status.stdout.splitlines())
    report = run_tierdesk("segment", "--report", env=env)
    assert report.returncode == 0, report.stderr
    assert "120 customers" in report.stdout
    assert "Data quality" in report.stdout
    listed = run_tierdesk("queue", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "909090" in listed.stdout
    assert listed.stdout.splitlines()[1].split()[:4] == ["id", "status", "ticket", "attempts"]
    jobs = run_tierdesk("jobs", env=env)
    assert jobs.returncode == 0, jobs.stderr
    header, row = jobs.stdout.splitlines()
    assert header.split()[:4] == ["id", "job", "status", "started"]
    assert row.split()[1:3] == ["sync", "ok"]
    assert "2.5 s" in row
    replayed = run_tierdesk("queue", "retry", str(event_id), env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert store.get_event(event_id).status == "pending"


def test_a_command_that_looks_at_the_store_does_not_create_one(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    result = run_tierdesk("queue", env={"TIERDESK_DB": str(path)})
    assert result.returncode != 0
    assert f"TIERDESK_DB={path}: there is no database at {path}" in result.stderr
    assert "tierdesk sync" in result.stderr  # the fix
    assert not path.exists()


HELPDESK_ENV = {
    "TIERDESK_ZENDESK_URL": "http://127.0.0.1:9",
    "TIERDESK_ZENDESK_EMAIL": "agent@example.com",
    "TIERDESK_ZENDESK_TOKEN": "not-a-real-token",
    "TIERDESK_ZENDESK_WEBHOOK_SECRET": "not-a-real-secret",
}


@pytest.mark.parametrize("command", [["queue"], ["worker"], ["sync"], ["segment"]])
@pytest.mark.parametrize("case", ["missing directory", "a directory", "not a database"])
def test_a_bad_tierdesk_db_is_one_line_naming_the_variable_value_and_fix(
    tmp_path: Path, command: list[str], case: str
) -> None:
    if case == "missing directory":
        db, fix = str(tmp_path / "no-such-dir" / "tierdesk.db"), f"mkdir -p {tmp_path / 'no-such-dir'}"
    elif case == "a directory":
        db, fix = str(tmp_path), f"e.g. TIERDESK_DB={tmp_path / 'tierdesk.db'}"
    else:
        (tmp_path / "notes.db").write_text("not a database\n")
        db, fix = str(tmp_path / "notes.db"), "Point TIERDESK_DB at tierdesk's database file"
    result = run_tierdesk(*command, env={**HELPDESK_ENV, "TIERDESK_DB": db})
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: TIERDESK_DB={db}")
    assert fix in line


def test_other_start_up_mistakes_name_their_variable_too(tmp_path: Path) -> None:
    env = {**HELPDESK_ENV, "TIERDESK_DB": str(tmp_path / "t.db")}
    mapping = run_tierdesk("worker", env={**env, "TIERDESK_MAPPINGS": str(tmp_path / "nope.yaml")})
    assert mapping.returncode != 0
    (line,) = mapping.stderr.splitlines()
    assert f"TIERDESK_MAPPINGS={tmp_path / 'nope.yaml'}: cannot read the mapping file" in line
    level = run_tierdesk("worker", env={**env, "TIERDESK_LOG_LEVEL": "chatty"})
    assert level.returncode != 0
    (line,) = level.stderr.splitlines()
    assert "TIERDESK_LOG_LEVEL=chatty: expected one of DEBUG, INFO, WARNING" in line


def _helpdesk_env(sandbox: ZendeskSandbox, tmp_path: Path, **changes: str) -> dict[str, str]:
    return {
        "TIERDESK_DB": str(tmp_path / "t.db"),
        "TIERDESK_ZENDESK_URL": sandbox.base_url,
        "TIERDESK_ZENDESK_EMAIL": EMAIL,
        "TIERDESK_ZENDESK_TOKEN": TOKEN,
        "TIERDESK_ZENDESK_WEBHOOK_SECRET": "not-a-real-secret",
        "TIERDESK_HTTP_ATTEMPTS": "1",
        **changes,
    }


def test_a_wrong_token_at_start_says_which_variables_to_check(
    sandbox: ZendeskSandbox, seeded: object, tmp_path: Path
) -> None:
    result = run_tierdesk("worker", env=_helpdesk_env(sandbox, tmp_path, TIERDESK_ZENDESK_TOKEN="wrong"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    host = sandbox.base_url.removeprefix("http://")
    assert f"Zendesk at {host} refused our credentials (401)" in line
    assert "check TIERDESK_ZENDESK_EMAIL and TIERDESK_ZENDESK_TOKEN" in line


def test_an_unreachable_helpdesk_at_start_names_the_host(tmp_path: Path) -> None:
    port = free_port()  # a port nobody listens on
    env = {**HELPDESK_ENV, "TIERDESK_DB": str(tmp_path / "t.db"), "TIERDESK_HTTP_ATTEMPTS": "1"}
    result = run_tierdesk("worker", env={**env, "TIERDESK_ZENDESK_URL": f"http://127.0.0.1:{port}"})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert f"cannot reach Zendesk at 127.0.0.1:{port}: Connection refused" in line
    assert f"check TIERDESK_ZENDESK_URL=http://127.0.0.1:{port}" in line


def test_a_mapped_group_the_helpdesk_lacks_names_file_line_and_the_closest_group(
    sandbox: ZendeskSandbox, seeded: object, tmp_path: Path
) -> None:
    mapping = tmp_path / "routing.yaml"
    text = (ROOT / "mappings" / "default.yaml").read_text().replace('"Key Accounts"', '"Key Acounts"')
    mapping.write_text(text)
    line_number = next(i for i, line in enumerate(text.splitlines(), 1) if "Key Acounts" in line)
    result = run_tierdesk("worker", env=_helpdesk_env(sandbox, tmp_path, TIERDESK_MAPPINGS=str(mapping)))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert f"{mapping}:{line_number}: group 'Key Acounts' does not exist in Zendesk" in line
    assert "did you mean 'Key Accounts'?" in line


def test_one_shot_commands_keep_log_lines_off_stdout_and_quiet_by_default(live: Live) -> None:
    env = settings_env(live.runtime.settings)
    del env["TIERDESK_LOG_LEVEL"]
    quiet = run_tierdesk("sync", env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert "segments: 120 customers" in quiet.stdout
    assert quiet.stderr == ""  # INFO lines such as sync.recomputed are the service's, not the user's
    chatty = run_tierdesk("sync", env={**env, "TIERDESK_LOG_LEVEL": "INFO"})
    assert chatty.returncode == 0, chatty.stderr
    assert not [line for line in chatty.stdout.splitlines() if line.startswith("{")]
    events = [json.loads(line)["event"] for line in chatty.stderr.splitlines()]
    assert "sync.recomputed" in events


@pytest.mark.slow
def test_serve_logs_each_request_as_a_json_line(live: Live) -> None:
    env = {
        **settings_env(live.runtime.settings),
        "TIERDESK_LOG_LEVEL": "INFO",
        "TIERDESK_WORKER_THREADS": "1",
    }
    port = free_port()
    script = Path(sys.executable).parent / "tierdesk"
    process = subprocess.Popen(  # noqa: S603 - our own command
        [str(script), "serve", "--port", str(port)],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/healthz?probe=1", timeout=2)
                break
            except requests.ConnectionError:
                assert process.poll() is None, "serve exited"
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        assert answer.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert stdout.startswith(f"tierdesk serving on http://127.0.0.1:{port}")
    assert "\x1b[" not in stderr  # no terminal colours
    lines = [json.loads(line) for line in stderr.splitlines()]  # every line is JSON
    access = [line for line in lines if line["event"] == "web.request"]
    assert {"method": "GET", "path": "/healthz", "status": 200} in [
        {k: line[k] for k in ("method", "path", "status")} for line in access
    ]

"""Keeping the helpdesk fresh: the job lock, tag pushes, re-routing and the one-command setup."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from integration import reroute, scheduler, segment_service, tagsync
from integration.cli.commands import main
from integration.core.models import Decision
from integration.pull import pull
from integration.runtime import Runtime
from integration.scheduler import lock_name, refresh, run_job
from tests.support import EMAIL, TOKEN, Live, settings_env, wait_for


def _user(live: Live, user_id: str) -> dict:
    return requests.get(
        f"{live.sandbox.base_url}/api/v2/users/{user_id}", auth=(f"{EMAIL}/token", TOKEN), timeout=5
    ).json()["user"]


def _put_user(live: Live, user_id: str, body: dict) -> None:
    requests.put(
        f"{live.sandbox.base_url}/api/v2/users/{user_id}",
        json={"user": body},
        auth=(f"{EMAIL}/token", TOKEN),
        timeout=5,
    ).raise_for_status()


def test_only_one_process_runs_a_job_at_a_time(live: Live) -> None:
    other = Runtime.from_settings(live.runtime.settings)  # a second scheduler process
    assert other.store.acquire_lock(lock_name("sync"), "other-host:1", ttl=60)
    assert run_job(live.runtime, "sync", owner="this-host:2") is None
    other.store.release_lock(lock_name("sync"), "other-host:1")

    results: list[object] = []
    barrier = threading.Barrier(2)

    def go(runtime: Runtime, owner: str) -> None:
        barrier.wait()
        results.append(run_job(runtime, "sweep", owner=owner))

    threads = [
        threading.Thread(target=go, args=(live.runtime, "a:1")),
        threading.Thread(target=go, args=(other, "b:2")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    ran = [r for r in results if r is not None]
    runs = [r for r in live.runtime.store.list_job_runs() if r["job"] == "sweep"]
    assert len(runs) == len(ran) >= 1  # every run that happened is recorded, none overlapped
    assert all(r["status"] == "done" for r in runs)


def test_a_job_longer_than_its_lock_keeps_it_and_sync_and_recompute_never_overlap(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()

    def long_sync(runtime: Runtime) -> dict[str, Any]:  # a sync that takes longer than the lock lives
        started.set()
        release.wait(20)
        return {"long": True}

    monkeypatch.setitem(scheduler.JOBS, "sync", long_sync)
    other = Runtime.from_settings(live.runtime.settings)  # a second scheduler process
    results: list[object] = []
    running = threading.Thread(target=lambda: results.append(run_job(live.runtime, "sync", "a:1", ttl=0.6)))
    running.start()
    try:
        assert started.wait(10)
        time.sleep(1.5)  # well past the lock's 0.6 s time to live
        assert run_job(other, "sync", owner="b:2", ttl=0.6) is None
        assert run_job(other, "recompute", owner="b:2", ttl=0.6) is None
        assert run_job(live.runtime, "recompute", owner="a:1", ttl=0.6) is None  # same process, same owner
        assert run_job(other, "sweep", owner="b:2", ttl=0.6) is not None  # other jobs are not held up
    finally:
        release.set()
        running.join(timeout=10)
    assert results == [{"long": True}]
    runs = [(r["job"], r["status"]) for r in live.runtime.store.list_job_runs() if r["job"] != "sweep"]
    assert runs == [("sync", "done")]
    assert run_job(other, "recompute", owner="b:2", ttl=0.6) is not None  # free again once it finished


def test_push_writes_only_changes_and_never_touches_other_tags(live: Live) -> None:
    runtime = live.runtime
    first = tagsync.push(runtime.store, runtime.connectors["zendesk"], runtime.mapping)
    users = first.planned["users"]
    assert users >= 100  # every customer gets its segment tags the first time
    assert first.write_calls == -(-users // 100) + -(-first.planned.get("organizations", 0) // 100)
    assert first.failed.get("users", 0) == 0

    vip_key = runtime.store.customers_by_segment()[("vip", "vip")][0]
    vip_id = vip_key.rsplit(":", 1)[1]
    tags = _user(live, vip_id)["tags"]
    assert "tierdesk_vip_vip" in tags
    own = [t for t in tags if not t.startswith("tierdesk_")]

    again = tagsync.push(runtime.store, runtime.connectors["zendesk"], runtime.mapping)
    assert again.write_calls == 0  # nothing changed, nothing sent

    # the customer changes segment in the helpdesk's data: their tier tags follow, nothing else moves
    established = runtime.store.customers_by_segment()[("lifecycle", "established")][0].rsplit(":", 1)[1]
    _put_user(live, established, {"tags": [*_user(live, established)["tags"], "agent_note"]})
    before = set(_user(live, established)["tags"])
    _put_user(live, established, {"user_fields": {"revenue_12m": 0, "service_cost_12m": 50_000}})
    pull(runtime.store, runtime.connectors["zendesk"], streams=("users",))
    segment_service.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
    changed = tagsync.push(runtime.store, runtime.connectors["zendesk"], runtime.mapping)
    assert changed.planned["users"] >= 1
    assert changed.write_calls >= 1
    after = set(_user(live, established)["tags"])
    assert "agent_note" in after
    assert "tierdesk_value_negative" in after
    assert {t for t in before if not t.startswith("tierdesk_")} <= after
    assert set(own) <= set(_user(live, vip_id)["tags"])


def _decision(priority: str, tags: tuple[str, ...] = ()) -> Decision:
    return Decision(priority=priority, sla="gold", group="Senior Support", tags=tags)


def test_reroute_plan_table(live: Live) -> None:
    mapping = live.runtime.mapping
    cases = [
        ("off", "normal", "normal", "high", None, False),
        ("priority", "normal", "normal", "high", "high", False),
        ("priority", "high", "high", "normal", "normal", False),
        ("priority", "urgent", "normal", "high", None, True),
        ("priority", "urgent", "normal", "urgent", None, False),
        ("priority", "high", "normal", "urgent", "urgent", False),
        ("all", "normal", "normal", "high", "high", False),
    ]
    for mode, live_priority, last, new, expected, kept in cases:
        plan = reroute.plan(mode, live_priority, last, _decision(new), (), mapping)
        assert (plan.priority, plan.kept_agent_priority) == (expected, kept), (mode, live_priority, last, new)
    everything = reroute.plan(
        "all",
        "normal",
        "normal",
        _decision("high", ("tierdesk_tier_a", "tierdesk_sla_gold")),
        ("tierdesk_tier_b", "tierdesk_sla_standard", "billing", "tierdesk_routed"),
        mapping,
    )
    assert everything.add_tags == ("tierdesk_tier_a", "tierdesk_sla_gold")
    assert everything.remove_tags == ("tierdesk_tier_b", "tierdesk_sla_standard")
    assert everything.group == "Senior Support"
    with pytest.raises(ValueError, match="re-route mode"):
        reroute.plan("sometimes", None, None, _decision("high"), (), mapping)


def test_open_ticket_is_rerouted_when_its_customer_changes_segment(live: Live) -> None:
    from integration.worker import Worker

    runtime = Runtime.from_settings(replace(live.runtime.settings, reroute="all"))
    customer_key = runtime.store.customers_by_segment()[("lifecycle", "established")][0]
    segments = runtime.store.segments_for(customer_key)
    assert segments["value"].label != "negative"
    customer_id = customer_key.rsplit(":", 1)[1]
    ticket = live.zendesk.create_ticket(customer_id, "Still waiting", "x")
    live.sandbox.wait_for_deliveries(1, timeout=5)
    worker = Worker(runtime)
    wait_for(worker.run_once, "the worker to take the ticket's event", 5)
    first = runtime.store.get_decision(ticket.key)
    assert first is not None
    assert first.outcome == "applied"

    # the customer now costs more than they bring: the next scheduled sync re-routes the open ticket
    _put_user(live, customer_id, {"user_fields": {"revenue_12m": 0, "service_cost_12m": 90_000}})
    counts = refresh(runtime)
    assert counts["rerouted_zendesk"] == 1
    routed = live.zendesk.get_ticket(ticket.external_id)
    assert "tierdesk_value_negative" in routed.tags
    assert "tierdesk_routed" in routed.tags
    comments = requests.get(
        f"{live.sandbox.base_url}/api/v2/tickets/{ticket.external_id}/comments",
        auth=(f"{EMAIL}/token", TOKEN),
        timeout=5,
    ).json()["comments"]
    notes = [c["body"] for c in comments if not c["public"]]
    assert len(notes) == 2
    assert "re-routed" in notes[1]
    assert "value:" in notes[1]
    assert runtime.store.get_decision(ticket.key).outcome == "rerouted"
    # a second sync with nothing new changes nothing
    assert refresh(runtime)["rerouted_zendesk"] == 0


def test_setup_zendesk_is_idempotent_and_dry_run_changes_nothing(live: Live) -> None:
    runner = CliRunner()
    env = settings_env(live.runtime.settings)
    dry = runner.invoke(
        main, ["setup", "zendesk", "--url", "https://tierdesk.example.com", "--dry-run"], env=env
    )
    assert dry.exit_code == 0, dry.output
    assert "would update  webhook" in dry.output  # the live fixture's webhook points elsewhere
    assert "would create  sla_policy tierdesk: gold" in dry.output
    policies = requests.get(
        f"{live.sandbox.base_url}/api/v2/slas/policies", auth=(f"{EMAIL}/token", TOKEN), timeout=5
    ).json()["sla_policies"]
    assert policies == []

    first = runner.invoke(main, ["setup", "zendesk", "--url", "https://tierdesk.example.com"], env=env)
    assert first.exit_code == 0, first.output
    assert "create  sla_policy tierdesk: platinum" in first.output
    second = runner.invoke(main, ["setup", "zendesk", "--url", "https://tierdesk.example.com"], env=env)
    assert second.exit_code == 0, second.output
    assert "0 change(s) made" in second.output
    policies = requests.get(
        f"{live.sandbox.base_url}/api/v2/slas/policies", auth=(f"{EMAIL}/token", TOKEN), timeout=5
    ).json()["sla_policies"]
    gold = next(p for p in policies if p["title"] == "tierdesk: gold")
    assert gold["filter"]["all"] == [
        {"field": "current_tags", "operator": "includes", "value": "tierdesk_sla_gold"}
    ]
    assert {m["priority"] for m in gold["policy_metrics"]} == {"low", "normal", "high", "urgent"}


def test_jobs_lists_runs_and_runs_one(live: Live) -> None:
    runner = CliRunner()
    env = settings_env(live.runtime.settings)
    ran = runner.invoke(main, ["jobs", "--run", "sync"], env=env)
    assert ran.exit_code == 0, ran.output
    assert '"customers": 120' in ran.output
    listed = runner.invoke(main, ["jobs"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "sync" in listed.output
    assert "done" in listed.output
    assert "api calls" in listed.output

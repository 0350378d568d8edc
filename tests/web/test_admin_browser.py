"""The admin in a real headless Chromium (Playwright): what an admin does, click by click.

Sign in, break the mapping and see the error at its line, fix and publish it, preview a customer,
simulate a draft, look up why a ticket was routed, replay a dead event. Screenshots of the main pages
land in test-artifacts/admin/ (gitignored) for a person to look at. Every page is also checked for
console errors, which is where a Content-Security-Policy violation or a broken chart would show.

Needs Chromium at /usr/bin/chromium (`make test` installs Debian's package when it runs as root).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.zendesk import ZendeskConnector
from integration import segment_service
from integration.core.models import TicketEvent
from integration.pull import pull
from integration.runtime import Runtime
from integration.settings import Settings
from integration.web.app import create_app
from integration.worker import Worker
from sandbox.zendesk import ZendeskSandbox
from sandbox.zendesk.seed import seed
from tests.support import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "admin"
PASSWORD = "browser-test-password"
TOKEN = "browser-test-token"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="browser tests need Chromium at /usr/bin/chromium: `make test` installs it when run as root "
        "(apt-get install chromium)",
    ),
]


@dataclass
class Admin:
    url: str
    runtime: Runtime
    routed_ticket: str
    dead_event: int
    customer_email: str


def _route(runtime: Runtime, ticket_id: str, delivery: str) -> None:
    event_id, _ = runtime.queue.put(TicketEvent("zendesk", delivery, ticket_id), {"ticket_id": ticket_id})
    worker = Worker(runtime, name="browser-test")
    while (event := runtime.queue.claim(worker.name)) is not None:
        worker.process(event)
    assert runtime.store.get_event(event_id).status in ("done", "dead")


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    """A seeded Zendesk sandbox, tierdesk synced from it, one routed ticket and one dead event."""
    from werkzeug.serving import make_server

    box = ZendeskSandbox(email="agent@example.com", token="sandbox-token-not-real")
    summary = seed(box, customers=150, seed=11)
    box.start()
    settings = Settings(
        db=str(tmp_path_factory.mktemp("admin") / "tierdesk.db"),
        zendesk_url=box.base_url,
        zendesk_email=box.email,
        zendesk_token=box.token,
        zendesk_webhook_secret="browser-test-secret",
        http_attempts=2,
        http_backoff=0.01,
        max_attempts=2,
        retry_base=0.05,
        admin_password=PASSWORD,
        admin_token=TOKEN,
        secret_key="browser-test-secret-key-" + "x" * 20,
    )
    runtime = Runtime.from_settings(settings)
    pull(runtime.store, runtime.connectors["zendesk"])
    segment_service.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
    zendesk = ZendeskConnector(box.base_url, box.email, box.token)
    requester = summary.customer_ids[3]
    ticket = zendesk.create_ticket(str(requester), "Invoice shows the wrong amount", "Please check")
    _route(runtime, ticket.external_id, "browser-delivery-1")
    _route(runtime, "987654", "browser-delivery-2")  # no such ticket: dead at once (404)
    dead = runtime.store.list_events(["dead"])[0]
    server = make_server("127.0.0.1", 0, create_app(runtime=runtime), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    customer = runtime.store.get_customer(f"zendesk:user:{summary.customer_ids[5]}")
    assert customer is not None
    assert customer.email
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield Admin(
        f"http://127.0.0.1:{server.server_port}",
        runtime,
        ticket.external_id,
        dead.id,
        customer.email,
    )
    server.shutdown()
    thread.join(timeout=5)
    runtime.store.close()
    box.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


class Problems:
    """Console errors, uncaught exceptions and failed subresources (CSS, JS, images) of a page.

    A page itself may answer 4xx on purpose (a wrong password is 401, a broken mapping 422): the
    browser logs those as "Failed to load resource", so documents are judged by their status instead.
    """

    def __init__(self, page: sync_api.Page) -> None:
        self.seen: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.seen.append(f"page error: {e}"))
        page.on("response", self._response)

    def _console(self, message: sync_api.ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.seen.append(f"console: {message.text}")

    def _response(self, response: sync_api.Response) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            self.seen.append(f"{response.status} for {response.url}")

    def check(self) -> None:
        seen, self.seen = self.seen, []
        assert not seen, seen


def _sign_in(page: sync_api.Page, admin: Admin) -> None:
    page.goto(f"{admin.url}/admin/login")
    page.fill("#user", "admin")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{admin.url}/admin/")


@pytest.fixture(scope="module")
def signed_in(browser: sync_api.Browser, admin: Admin) -> Iterator[tuple[sync_api.Page, Problems]]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("dialog", lambda dialog: dialog.accept())  # "Publish this mapping?" and friends
    problems = Problems(page)
    _sign_in(page, admin)
    yield page, problems
    context.close()


def _shot(page: sync_api.Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_sign_in_with_the_keyboard_then_sign_out(browser: sync_api.Browser, admin: Admin) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    problems = Problems(page)
    page.goto(f"{admin.url}/admin/queue")
    assert page.url.startswith(f"{admin.url}/admin/login")  # nothing admin without signing in
    _shot(page, "01-login")
    page.keyboard.type("admin")  # the user field has the focus
    page.keyboard.press("Tab")
    page.keyboard.type("not the password")
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#login-error")).to_contain_text("Wrong user or password")
    page.fill("#password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{admin.url}/admin/queue")  # back where we wanted to go
    cookie = next(c for c in context.cookies() if c["name"] == "tierdesk_admin")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    page.goto(f"{admin.url}/admin/")
    sync_api.expect(page.locator("h1")).to_have_text("Overview")
    _shot(page, "02-overview")
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r".*/admin/login$"))
    page.goto(f"{admin.url}/admin/mapping")
    assert "/admin/login" in page.url
    problems.check()
    context.close()


def _editor_text(page: sync_api.Page) -> str:
    return page.input_value("#mapping-text")


def test_a_mapping_error_shows_at_its_line_and_is_never_published(
    signed_in: tuple[sync_api.Page, Problems], admin: Admin
) -> None:
    page, problems = signed_in
    page.goto(f"{admin.url}/admin/mapping/edit?from=active")
    lines = _editor_text(page).splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if line.strip().startswith("revenue_12m: 0.4"))
    lines[number - 1] = lines[number - 1].replace("0.4", "lots")
    page.fill("#mapping-text", "\n".join(lines) + "\n")
    page.click("#check-button")
    error = page.locator("#mapping-error")
    sync_api.expect(error).to_contain_text(f"Line {number}")
    sync_api.expect(error).to_contain_text("segments.tier.weights.revenue_12m")
    sync_api.expect(error.locator(".excerpt .here")).to_contain_text("revenue_12m: lots")
    sync_api.expect(page.locator("#gutter .error-line")).to_have_text(str(number))
    _shot(page, "03-mapping-error")
    page.click("#publish-button")  # publishing the broken text is refused the same way
    sync_api.expect(page.locator("#mapping-error")).to_contain_text(f"Line {number}")
    assert admin.runtime.store.active_mapping_version().id == 1
    problems.check()


def _fixed_text(page: sync_api.Page, admin: Admin) -> str:
    page.goto(f"{admin.url}/admin/mapping/edit?from=active")
    text = _editor_text(page)
    assert 'set: {group: "Retention"}' in text
    return text.replace('set: {group: "Retention"}', 'set: {priority: high, group: "Retention"}')


def test_preview_a_customer_with_the_active_mapping_and_a_draft(
    signed_in: tuple[sync_api.Page, Problems], admin: Admin
) -> None:
    page, problems = signed_in
    page.fill("#mapping-text", _fixed_text(page, admin))
    page.click("#check-button")
    sync_api.expect(page.locator("#mapping-ok")).to_be_visible()
    page.click("text=Preview draft")
    page.fill("#q", admin.customer_email.split("@")[0])
    page.keyboard.press("Enter")
    if page.locator("#matches").count():  # several customers match: pick ours from the list
        page.click(f"#matches tr:has-text('{admin.customer_email}') a")
    result = page.locator("#preview-result")
    sync_api.expect(result).to_be_visible()
    sync_api.expect(result.locator("article")).to_have_count(2)  # active and draft side by side
    sync_api.expect(result.locator("article").first).to_contain_text("Priority")
    sync_api.expect(result.locator("article").first).to_contain_text("tier")
    sync_api.expect(result).to_contain_text(admin.customer_email)
    _shot(page, "04-preview")
    problems.check()


def test_simulate_a_draft_over_stored_tickets(
    signed_in: tuple[sync_api.Page, Problems], admin: Admin
) -> None:
    page, problems = signed_in
    page.fill("#mapping-text", _fixed_text(page, admin))
    page.click("#check-button")
    page.click("text=Simulate draft")
    page.fill("#days", "365")
    page.click("#simulate-button")
    sync_api.expect(page.locator("#simulation h2").first).to_contain_text("would move")
    sync_api.expect(page.locator("#counts-priority")).to_contain_text("Before")
    assert page.locator("#chart-priority canvas").count() >= 1  # uPlot drew the chart
    moved = page.locator("#moves tbody tr")
    assert moved.count() >= 1
    _shot(page, "05-simulate")
    problems.check()


def test_fix_and_publish_then_roll_back(signed_in: tuple[sync_api.Page, Problems], admin: Admin) -> None:
    page, problems = signed_in
    page.fill("#mapping-text", _fixed_text(page, admin))
    page.fill("#note", "frustrated and at-risk customers get high priority")
    page.click("#publish-button")
    page.wait_for_url(re.compile(r".*/admin/mapping/versions/\d+$"))
    sync_api.expect(page.locator("h1")).to_contain_text("active")
    sync_api.expect(page.locator("pre.diff .d-add")).to_contain_text("priority: high")
    version = admin.runtime.store.active_mapping_version()
    assert version.id == 2
    assert version.author == "admin"
    assert version.note == "frustrated and at-risk customers get high priority"
    _shot(page, "06-published-version")
    page.goto(f"{admin.url}/admin/mapping")
    page.click("text=Roll back to 1")
    page.wait_for_url(re.compile(r".*/admin/mapping/versions/3$"))
    assert (
        admin.runtime.store.active_mapping_version().text == admin.runtime.store.get_mapping_version(1).text
    )
    _shot(page, "07-mapping-versions")
    problems.check()


def test_look_up_why_a_ticket_was_routed(signed_in: tuple[sync_api.Page, Problems], admin: Admin) -> None:
    page, problems = signed_in
    page.goto(f"{admin.url}/admin/decisions")
    page.fill("#ticket", admin.routed_ticket)
    page.keyboard.press("Enter")
    section = page.locator("section.decision").first
    sync_api.expect(section).to_contain_text("applied")
    sync_api.expect(section).to_contain_text("priority")  # the rules
    sync_api.expect(section.locator("dl.segments")).to_contain_text("tier")  # the segment reasons
    sync_api.expect(section.locator("pre.json")).to_contain_text("ticket_id")  # what Zendesk answered
    _shot(page, "08-decision")
    problems.check()


def test_replay_a_dead_event(signed_in: tuple[sync_api.Page, Problems], admin: Admin) -> None:
    page, problems = signed_in
    page.goto(f"{admin.url}/admin/queue")
    sync_api.expect(page.locator("#dead")).to_contain_text("Dead (1)")
    _shot(page, "09-queue")
    page.click(f"text=Replay {admin.dead_event}")
    sync_api.expect(page.locator(".flash")).to_contain_text(f"Event {admin.dead_event} is queued again")
    assert admin.runtime.store.get_event(admin.dead_event).status == "pending"
    sync_api.expect(page.locator("#dead")).to_contain_text("Dead (0)")
    problems.check()


def test_segments_and_service_pages_draw_their_charts(
    signed_in: tuple[sync_api.Page, Problems], admin: Admin
) -> None:
    page, problems = signed_in
    page.goto(f"{admin.url}/admin/segments")
    sync_api.expect(page.locator("table.dist").first).to_contain_text("Customers")
    assert page.locator("#drift-chart canvas").count() >= 1
    sync_api.expect(page.locator("#quality")).to_be_visible()
    _shot(page, "10-segments")
    page.goto(f"{admin.url}/admin/service?dimension=tier")
    sync_api.expect(page.locator("#service-table")).to_contain_text("all tickets")
    assert page.locator("#service-chart-1 canvas").count() >= 1
    _shot(page, "11-service")
    problems.check()

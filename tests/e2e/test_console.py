"""The web console in a real browser: headless Chromium driven by Playwright, on a real `ilji serve`.

One server (tokens on, the conference example mounted) and one `ilji worker` serve the module.
Each test opens its own browser context (its own sessionStorage, so its own sign-in) and checks
what a person would: the sign-in prompt, a stream and one of its events, time travel on a
conference, the live tail receiving an event appended meanwhile, a projection's lag appearing
while it is paused and clearing when resumed, and that the console works with tokens off too.

The tests take a screenshot of every screen. With ILJI_UPDATE_SCREENSHOTS=1 they are written to
docs/assets/screenshots/ (the guide shows them); otherwise to a temporary directory, so a test
run never changes the work tree.

Chromium is Debian's (`make system-deps` installs it; ILJI_CHROMIUM names another binary):
Playwright's own browser download does not work offline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from tests.e2e.server_helpers import TOKEN_SPEC, TOKENS, Server, running_server
from tests.e2e.worker_fixtures import ROOT, Ledger, ledger, stop, wait_until

pytestmark = pytest.mark.timeout(120)

SPEC = "tests.e2e.test_console:projections"
PROJECTION = "console_ledger"
SCREENSHOTS = ROOT / "docs" / "assets" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def projections() -> list[Ledger]:
    """What the worker runs (`ilji worker -p tests.e2e.test_console:projections`)."""
    return [ledger(PROJECTION, batch_size=100)]


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    env = {"ILJI_API_TOKENS": TOKEN_SPEC, "ILJI_MONITOR_INTERVAL": "0.5", "ILJI_ACCESS_LOG": "false"}
    with running_server(database_url, env=env, args=["--example", "conference"]) as s:
        yield s


@pytest.fixture(scope="module")
def admin(server: Server) -> Iterator[httpx.Client]:
    with server.client(TOKENS["admin"]) as client:
        yield client


@pytest.fixture(scope="module")
def conference(admin: httpx.Client) -> str:
    """A conference with a history: created, two reservations, one cancelled (4 events)."""
    cid = f"pycon{uuid.uuid4().hex[:6]}"
    base = f"/examples/conference/conferences/{cid}"
    steps = [
        admin.put(base, json={"name": "PyCon Korea", "seats": 100}),
        admin.post(f"{base}/reservations", json={"reservation_id": "r1", "quantity": 2}),
        admin.post(f"{base}/reservations", json={"reservation_id": "r2", "quantity": 3}),
        admin.delete(f"{base}/reservations/r1"),
    ]
    for response in steps:
        assert response.status_code == 200, response.text
    return f"conference-{cid}"


@pytest.fixture(scope="module")
def worker(database_url: str, server: Server, admin: httpx.Client) -> Iterator[subprocess.Popen[bytes]]:
    args = [sys.executable, "-m", "ilji.cli", "worker", "-p", SPEC, "--database-url", database_url]
    args += ["--worker-id", "console-w1", "--lease-ttl", "1.5", "--poll-interval", "0.1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ILJI_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(
            lambda: admin.get(f"/v1/projections/{PROJECTION}").status_code == 200, timeout=30, interval=0.1
        )
        yield proc
    finally:
        assert stop(proc) == 0


def chromium_path() -> str:
    return os.environ.get("ILJI_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    path = chromium_path()
    if not Path(path).exists():
        pytest.fail(
            f"Chromium is not installed ({path} is missing): run `make system-deps` (Debian's chromium "
            "package), or set ILJI_CHROMIUM to a Chromium binary. The console's browser tests need it."
        )
    browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("ILJI_UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def shoot(screenshot_dir: Path) -> Callable[[Page, str], Path]:
    def take(page: Page, name: str) -> Path:
        path = screenshot_dir / f"console-{name}.png"
        page.wait_for_timeout(300)  # let the last repaint (and the tail's highlight) settle
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


class Console:
    """A browser context on the console, and the JavaScript errors its pages raised."""

    def __init__(self, browser: Browser, server: Server, *, token: str | None, **options: Any) -> None:
        self.server = server
        self.context: BrowserContext = browser.new_context(
            viewport=options.pop("viewport", LAPTOP), **options
        )
        if token is not None:
            # What the sign-in form stores: tests other than the sign-in test skip the form.
            self.context.add_init_script(f"sessionStorage.setItem('ilji.console.token', {token!r})")
        self.context.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, route: str = "#/overview") -> Page:
        self.page.goto(f"{self.server.url}/console/{route}")
        return self.page

    def close(self) -> None:
        self.context.close()
        assert not self.errors, self.errors


@pytest.fixture
def console(browser: Browser, server: Server) -> Iterator[Console]:
    c = Console(browser, server, token=TOKENS["admin"])
    yield c
    c.close()


def tab_to(page: Page, predicate: str, presses: int = 25) -> None:
    """Press Tab until `predicate` (a JavaScript expression about `el`) holds for the focused element."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const el = document.activeElement; return Boolean({predicate}); }})()"):
            return
    raise AssertionError(f"Tab never reached an element where {predicate}")


# -- tests ---------------------------------------------------------------------------------------


def test_a_token_is_asked_for_and_a_wrong_one_refused(
    browser: Browser, server: Server, worker: Any, shoot: Callable[[Page, str], Path]
) -> None:
    c = Console(browser, server, token=None)
    try:
        page = c.open()
        token = page.get_by_label("API token")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(token).to_be_focused()
        shoot(page, "sign-in")
        token.fill("not-a-token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("did not accept this token")
        expect(token).to_be_visible()
        token.fill(TOKENS["reader"])
        token.press("Enter")
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        expect(page.locator("#session-status")).to_have_text("Signed in with a read token")
        # A read token sees the projections but gets no buttons to change them.
        page.get_by_role("link", name="Projections", exact=True).click()
        card = page.locator(f'[data-projection="{PROJECTION}"]')
        expect(card).to_contain_text("need an admin token")
        expect(card.get_by_role("button")).to_have_count(0)
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_label("API token")).to_be_visible()
    finally:
        c.close()


def test_the_overview_counts_events_and_charts_appends(
    console: Console, conference: str, shoot: Callable[[Page, str], Path], browser: Browser, server: Server
) -> None:
    page = console.open("#/overview")
    events = page.locator('[data-field="events"] .stat-value')
    expect(events).to_have_text(re.compile(r"^\d[\d,]*$"))
    assert int(events.inner_text().replace(",", "")) >= 4
    chart = page.get_by_role("img", name=re.compile("Events appended per minute"))
    expect(chart).to_be_visible()
    assert chart.locator("rect.bar").count() == 60
    shoot(page, "overview")
    dark = Console(browser, server, token=TOKENS["admin"], color_scheme="dark")
    try:
        dark_page = dark.open("#/overview")
        expect(dark_page.get_by_role("img", name=re.compile("Events appended"))).to_be_visible()
        background = dark_page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(15, 18, 24)", background
        shoot(dark_page, "overview-dark")
    finally:
        dark.close()


def test_browse_to_a_stream_and_open_an_event_with_the_keyboard(
    console: Console, conference: str, shoot: Callable[[Page, str], Path]
) -> None:
    page = console.open("#/streams")
    expect(page.get_by_role("heading", name="Streams")).to_be_visible()
    tab_to(page, "el.id === 'stream-prefix'")
    page.keyboard.type(conference[:-2])
    page.keyboard.press("Enter")
    link = page.get_by_role("link", name=conference, exact=True)
    expect(link).to_be_visible()
    expect(page.get_by_role("status").first).to_contain_text("1 stream")
    shoot(page, "streams")
    tab_to(page, f"el.textContent === {conference!r}")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=conference)).to_be_visible()
    table = page.get_by_role("table")
    expect(table.get_by_role("row")).to_have_count(5)  # the header and 4 events
    expect(table).to_contain_text("ReservationCancelled")

    tab_to(page, "el.getAttribute('aria-label') === 'Open event 2, SeatsReserved'")
    page.keyboard.press("Enter")
    detail = page.get_by_role("heading", name="Event 2: SeatsReserved")
    expect(detail).to_be_focused()
    data = page.get_by_label("Data of event 2", exact=True)
    expect(data).to_contain_text('"reservation_id": "r1"')
    expect(data).to_contain_text('"quantity": 2')
    expect(page.get_by_label("Metadata of event 2", exact=True)).to_contain_text('"schema_version": 2')
    expect(page.locator("tr.selected")).to_contain_text("SeatsReserved")
    shoot(page, "event")


def test_an_event_shows_the_events_committed_with_it(console: Console, admin: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    source, target, alone = f"account-{tag}a", f"account-{tag}b", f"account-{tag}c"
    parts = [
        {"stream": source, "events": [{"type": "Debited", "data": {"amount": 5}}]},
        {"stream": target, "events": [{"type": "Credited", "data": {"amount": 5}}]},
    ]
    assert admin.post("/v1/append", json={"parts": parts}).status_code == 201
    assert (
        admin.post(f"/v1/streams/{alone}", json={"events": [{"type": "Noted", "data": {}}]}).status_code
        == 201
    )
    page = console.open(f"#/stream/{source}/1")
    expect(page.get_by_role("heading", name="Event 1: Debited")).to_be_visible()
    together = page.get_by_role("list", name="Events committed with this one")
    expect(together).to_contain_text(f"{target} #1")
    expect(together).to_contain_text("Credited")
    together.get_by_role("link", name=f"{target} #1").click()
    expect(page.get_by_role("heading", name="Event 1: Credited")).to_be_visible()
    expect(page.get_by_role("list", name="Events committed with this one")).to_contain_text(f"{source} #1")
    page = console.open(f"#/stream/{alone}/1")
    expect(page.get_by_text("No other event was committed in the same transaction.")).to_be_visible()


def test_time_travel_steps_through_a_conference_and_highlights_changes(
    console: Console, conference: str, shoot: Callable[[Page, str], Path], browser: Browser, server: Server
) -> None:
    page = console.open(f"#/stream/{conference}")
    page.get_by_role("link", name="Time travel").click()
    expect(page.get_by_role("heading", name="Time travel")).to_be_visible()
    slider = page.get_by_label("Version", exact=True)
    expect(slider).to_have_value("4")
    slider.focus()
    page.keyboard.press("Home")
    expect(page.get_by_role("heading", name="Initial state")).to_be_visible()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("heading", name="State after version 2")).to_be_visible()
    expect(page.locator("#version-output")).to_have_text("2 of 4")
    changes = page.get_by_role("list", name="What this event changed")
    expect(changes).to_contain_text("Added reservations.r1 = 2")
    expect(changes).to_contain_text("Changed available: 100 → 98")
    state = page.get_by_label("State after version 2")
    expect(state.locator(".chg-added")).to_have_text(re.compile(r'"r1": 2'))
    expect(state.locator(".chg-changed").first).to_contain_text('"reserved": 2')
    assert "version=2" not in page.url and page.url.endswith("v=2")

    page.get_by_role("button", name="Latest version").click()
    expect(page.get_by_role("heading", name="State after version 4")).to_be_visible()
    state = page.get_by_label("State after version 4")
    expect(state.locator(".chg-removed")).to_contain_text('"r1": 2')
    expect(page.get_by_role("list", name="What this event changed")).to_contain_text(
        "Removed reservations.r1"
    )
    shoot(page, "time-travel")

    phone = Console(browser, server, token=TOKENS["admin"], viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        phone_page = phone.open(f"#/travel/{conference}?v=3")
        expect(phone_page.get_by_role("heading", name="State after version 3")).to_be_visible()
        width = phone_page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page is {width} px wide on a {PHONE['width']} px screen"
        shoot(phone_page, "time-travel-phone")
    finally:
        phone.close()


def test_the_live_tail_shows_an_event_appended_while_it_is_open_and_pauses(
    console: Console, admin: httpx.Client, shoot: Callable[[Page, str], Path]
) -> None:
    category = f"tail{uuid.uuid4().hex[:8]}"
    page = console.open("#/tail")
    status = page.locator("#tail-status")
    expect(status).to_contain_text("Live: following the global log")
    stream = f"{category}-1"
    body = {"events": [{"type": "TicketSold", "data": {"seat": "A7", "price": 42}}]}
    assert admin.post(f"/v1/streams/{stream}", json=body).status_code == 201
    row = page.get_by_role("row").filter(has_text=stream)
    expect(row).to_contain_text("TicketSold")
    expect(status).to_contain_text(re.compile(r"\d+ events? so far"))

    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("button", name="Resume")).to_have_attribute("aria-pressed", "true")
    assert admin.post(f"/v1/streams/{category}-2", json=body).status_code == 201
    expect(status).to_contain_text("Paused: 1 new event waiting")
    expect(page.get_by_role("row").filter(has_text=f"{category}-2")).to_have_count(0)
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("row").filter(has_text=f"{category}-2")).to_be_visible()
    shoot(page, "live-tail")


def test_a_paused_projection_shows_its_lag_until_it_is_resumed(
    console: Console, admin: httpx.Client, worker: Any, shoot: Callable[[Page, str], Path]
) -> None:
    page = console.open("#/projections")
    card = page.locator(f'[data-projection="{PROJECTION}"]')
    behind = card.locator('[data-field="events_behind"]')
    expect(card.get_by_role("heading", name=PROJECTION)).to_be_visible()
    expect(behind).to_have_text("0")
    expect(card.locator('[data-field="owners"]')).to_have_text("console-w1")

    card.get_by_role("button", name="Pause").click()
    expect(card.locator('[data-field="state"]')).to_have_text("paused")
    expect(card.locator('[data-field="owners"]')).to_have_text("none")
    for i in range(3):
        response = admin.post(
            f"/v1/streams/lag-{uuid.uuid4().hex[:8]}", json={"events": [{"type": "Tick", "data": {"i": i}}]}
        )
        assert response.status_code == 201
    expect(behind).to_have_text("3")
    expect(card.locator('[data-field="lag_seconds"]')).not_to_have_text("caught up")
    shoot(page, "projections")

    card.get_by_role("button", name="Resume").click()
    expect(card.locator('[data-field="owners"]')).to_have_text("console-w1")
    expect(behind).to_have_text("0", timeout=20_000)
    expect(card.locator('[data-field="state"]')).to_have_text("running")
    expect(card.locator('[data-field="lag_seconds"]')).to_have_text("caught up")


def test_the_console_works_with_tokens_off(browser: Browser, database_url: str) -> None:
    with running_server(database_url, env={"ILJI_ACCESS_LOG": "false"}) as open_server:
        c = Console(browser, open_server, token=None)
        try:
            page = c.open()
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            expect(page.locator("#session-status")).to_have_text("Tokens are off on this server")
            expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
        finally:
            c.close()


# -- the routes behind the console (no browser) ---------------------------------------------------


def test_console_files_are_served_without_a_token_with_a_strict_policy(server: Server) -> None:
    with server.client() as anonymous:
        first = anonymous.get("/console", follow_redirects=True)
        assert first.status_code == 200 and first.url.path == "/console/"
        assert "text/html" in first.headers["content-type"]
        assert "script-src 'self'" in first.headers["content-security-policy"]
        again = anonymous.get(
            "/console/app.js", headers={"If-None-Match": anonymous.get("/console/app.js").headers["etag"]}
        )
        assert again.status_code == 304
        assert anonymous.get("/console/app.js").headers["content-type"].startswith("text/javascript")
        assert anonymous.get("/console/nope.js").status_code == 404
        assert anonymous.get("/console/..%2Fapp.py").status_code == 404
        assert anonymous.get("/v1/whoami").status_code == 401  # data needs a token
        assert anonymous.get("/v1/streams").status_code == 401


def test_the_console_routes_answer_by_role_and_validate_input(
    server: Server, admin: httpx.Client, conference: str
) -> None:
    with server.client(TOKENS["reader"]) as reader:
        assert reader.get("/v1/whoami").json() == {"auth": True, "role": "read"}
        listed = reader.get("/v1/streams", params={"prefix": conference})
        assert listed.status_code == 200
        assert [s["stream"] for s in listed.json()["streams"]] == [conference]
        assert listed.json()["streams"][0]["version"] == 4
        page = reader.get("/v1/streams", params={"category": "conference", "limit": 1}).json()
        assert len(page["streams"]) == 1
        assert reader.get("/v1/streams", params={"category": "a-b"}).status_code == 422
        assert reader.get("/v1/streams", params={"prefix": "a b"}).status_code == 422
        states = reader.get(f"/v1/states/{conference}", params={"from_version": 2, "limit": 2}).json()
        assert [s["event"]["version"] for s in states["states"]] == [2, 3] and states["next"] == 4
        assert states["before"]["available"] == 100
        missing = reader.get("/v1/states/nothing-here")
        assert missing.status_code == 404 and missing.json()["type"] == "urn:ilji:problem:no-domain-view"
        assert reader.get("/v1/states/conference-none").status_code == 404
        assert [v["category"] for v in reader.get("/v1/views").json()["views"]] == ["conference"]
        stats = reader.get("/v1/stats", params={"minutes": 5}).json()
        assert stats["bucket_seconds"] == 5 and len(stats["buckets"]) == 60
        assert reader.get("/v1/stats", params={"minutes": 2}).status_code == 422
        # Ilji's own streams ($audit...) are for admin tokens, as everywhere in the API.
        assert reader.get("/v1/streams", params={"prefix": "$"}).status_code == 403
        assert reader.get("/v1/streams", params={"category": "$audit"}).status_code == 403
        everything = reader.get("/v1/streams", params={"limit": 1000}).json()["streams"]
        assert everything and not [s for s in everything if s["stream"].startswith("$")]
    assert admin.get("/v1/whoami").json() == {"auth": True, "role": "admin"}
    assert admin.get("/v1/streams", params={"prefix": "$"}).status_code == 200

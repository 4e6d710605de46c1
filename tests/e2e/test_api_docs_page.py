"""The API docs page (/docs) in a real browser: Swagger UI from the package, under a strict policy.

Every request that leaves the server is refused, so a CDN reference would show up as a failed
request; a violation of the page's content security policy shows up in the browser's console.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Route, expect

from tests.e2e.server_helpers import Server, running_server
from tests.e2e.test_console import browser, playwright  # noqa: F401 - the browser fixtures

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    with running_server(database_url, env={"ILJI_ACCESS_LOG": "false"}) as s:
        yield s


def test_docs_page_works_offline_under_its_content_policy(server: Server, browser: Browser) -> None:  # noqa: F811
    page = browser.new_page()
    outside: list[str] = []
    problems: list[str] = []

    def only_this_server(route: Route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    response = page.goto(f"{server.url}/docs")
    assert response is not None and response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # Swagger UI rendered the document: the operations by their ids, the append example.
    expect(page.get_by_text("appendToStream", exact=True)).to_be_visible(timeout=30_000)
    expect(page.get_by_text("readAll", exact=True)).to_be_visible()
    page.get_by_text("appendToStream", exact=True).click()
    expect(page.get_by_text('"OrderPlaced"').first).to_be_visible()
    print("requests refused:", outside, "console errors:", problems)
    assert outside == []
    assert problems == []
    page.close()

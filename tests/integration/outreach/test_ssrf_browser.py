"""The browser worker's connections are pinned: every request Chromium makes (navigations, sub-requests, the
guard's own fetches) goes through the egress proxy, which connects only to the address the SSRF guard approves
as it connects. A name that resolves to a public address when the guard checks it and to a private one next
(DNS rebinding) never reaches the private address."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install funnel[browser])")

from funnel.outreach.forms import engine as engine_module  # noqa: E402 - after the skip above
from funnel.outreach.forms.model import SenderProfile  # noqa: E402
from tests.support.network import PUBLIC, REBINDING_HOST, page_handler, serving  # noqa: E402


@pytest.fixture
def chromium_rebinding(rebinding_dns, monkeypatch):
    """Python's resolver answers a public address first, then 127.0.0.1 (``rebinding_dns``); Chromium's own
    resolver is told the name is 127.0.0.1 (what it would learn if it looked the name up after the guard's
    check)."""
    monkeypatch.setattr(engine_module, "CHROMIUM_ARGS",
                        [*engine_module.CHROMIUM_ARGS, f"--host-resolver-rules=MAP {REBINDING_HOST} 127.0.0.1"])
    return rebinding_dns


@pytest.fixture
def entry_site(listener):
    """An allow-listed page that loads a script from the rebinding name (a sub-request)."""
    page = (f'<html><body><h1>Contact</h1><script src="http://{REBINDING_HOST}:{listener.port}/x.js"></script>'
            '<form method="post"><input name="name"><textarea name="message"></textarea>'
            '<button type="submit">Send</button></form></body></html>').encode()
    with serving(page_handler(page)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/"


def _engine(allow: list[str]):
    try:
        return engine_module.FormEngine(allow_hosts=allow, timeout=5.0).__enter__()
    except Exception as exc:  # noqa: BLE001 - any launch failure means "no browser here"
        pytest.skip(f"Chromium could not be started: {exc}")


def test_a_sub_request_to_a_rebinding_name_never_reaches_the_private_address(entry_site, listener,
                                                                              chromium_rebinding):
    engine = _engine([entry_site.split("/")[2]])
    try:
        engine.submit(entry_site, SenderProfile.from_dict({}), "hello", dry_run=True)
    finally:
        engine.close()
    assert listener.accepted == 0
    assert chromium_rebinding.lookups[:1] == [PUBLIC]  # the guard's check saw the public answer


def test_a_navigation_to_a_rebinding_name_never_reaches_the_private_address(listener, chromium_rebinding):
    engine = _engine([])
    try:
        result = engine.submit(f"http://{REBINDING_HOST}:{listener.port}/", SenderProfile.from_dict({}), "hello",
                               dry_run=True)
    finally:
        engine.close()
    assert listener.accepted == 0 and result.status == "failed"

"""The Playwright (sync API) driver: open the site, find and fill the contact form, submit it.

One :class:`FormEngine` owns one Chromium; every :meth:`FormEngine.submit` runs in a
fresh browser context (own cookies and storage), so a warm engine can process
form after form. The engine is not thread-safe: use one per thread.

Every request the browser makes passes the SSRF guard (:class:`NavigationGuard`),
including form posts and each redirect hop, and every connection it opens goes through the
egress proxy (:mod:`funnel.platform.egress_proxy`), which connects only to the address the
guard approves as it connects (``funnel/platform/ssrf.md``).
"""
from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin, urlsplit

from funnel.outreach.forms import detect
from funnel.outreach.forms.fields import (
    FILLABLE_SEMANTICS,
    HONEYPOT,
    TEXT,
    TEXTAREA,
    UNKNOWN,
    Control,
    FieldInfo,
    classify_form,
    kana_script,
)
from funnel.outreach.forms.fill import PlannedFill, plan_fills
from funnel.outreach.forms.model import FieldFill, FormResult, SenderProfile, Status
from funnel.outreach.forms.page_scripts import (
    FILL,
    INVALID_CONTROLS,
    IS_REDIRECT_INTERSTITIAL,
    PAGE_TEXT,
    SNAPSHOT,
    redirect_interstitial,
)
from funnel.platform.egress_proxy import EgressProxy
from funnel.platform.ssrf import UnsafeUrlError, check_url

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

log = logging.getLogger(__name__)

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 # WebRTC's UDP would bypass the egress proxy (and so the SSRF guard): no UDP that is not proxied.
                 "--force-webrtc-ip-handling-policy=disable_non_proxied_udp"]
SYSTEM_CHROMIUM = "/usr/bin/chromium"
# Pictures, media and fonts are never needed to read or fill a form; skipping them saves time.
SKIPPED_RESOURCE_TYPES = frozenset({"image", "media", "font"})
MAX_PAGE_LOADS = 8          # entry page, contact-link candidates and common paths together
MAX_LINK_DEPTH = 1          # follow contact links found on the entry page and one level below
CONFIRM_SCREENS = 2         # at most this many confirm screens before the final one
JS_REPLY_GRACE = 0.35       # seconds to let a script render the reply to its AJAX post
NO_ACTIVITY_CUTOFF = 2.0    # seconds after a click with no request and no navigation
DEFAULT_SUBJECT = {"ja": "お問い合わせ", "en": "Inquiry"}
# The page events a click watches to tell when the page has answered (Playwright types ``Page.on`` per event).
WatchedPageEvent = Literal["framenavigated", "request", "requestfinished", "requestfailed", "response"]

UnknownFieldClassifier = Callable[[list[dict[str, Any]]], dict[str, str]]
"""Optional LLM hook: receives descriptions of controls the rules could not classify and
returns {control name: semantic}; semantics outside FILLABLE_SEMANTICS are ignored."""


class NavigationGuard:
    """Playwright route handler enforcing the SSRF guard on every request of a context.

    Documents (page loads, form posts, iframes) are fetched here with redirects
    off. A redirect is answered with a tiny page that navigates to the target,
    so the next hop is a new request that comes through this guard again
    (Playwright does not route the hops of a redirect it follows itself).
    """

    def __init__(self, allow_hosts: Iterable[str], timeout: float):
        self.allow_hosts = tuple(allow_hosts)
        self.timeout_ms = timeout * 1000
        self.blocked: list[str] = []
        self._verdicts: dict[tuple[str, str, int | None], bool] = {}

    def is_safe(self, url: str) -> bool:
        parts = urlsplit(url)
        key = (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port)
        if key not in self._verdicts:
            try:
                check_url(url, self.allow_hosts)
                self._verdicts[key] = True
            except UnsafeUrlError:
                self._verdicts[key] = False
        return self._verdicts[key]

    def handle(self, route) -> None:
        from playwright.sync_api import Error as PlaywrightError

        request = route.request
        url = request.url
        try:
            if url.startswith(("data:", "blob:", "about:")):
                route.continue_()
                return
            if request.resource_type in SKIPPED_RESOURCE_TYPES:
                route.abort("blockedbyclient")
                return
            if not self.is_safe(url):
                self._refuse(route, url)
                return
            if not request.is_navigation_request():
                route.continue_()
                return
            response = route.fetch(max_redirects=0, timeout=self.timeout_ms)
            location = response.headers.get("location")
            if 300 <= response.status < 400 and location:
                target = urljoin(url, location)
                if not self.is_safe(target):
                    self._refuse(route, target)
                elif response.status in (307, 308) and request.method != "GET":
                    # Method-preserving redirect of a post: only the browser can repeat the body.
                    route.fulfill(response=response)
                else:
                    route.fulfill(status=200, content_type="text/html; charset=utf-8",
                                  body=redirect_interstitial(target))
                return
            route.fulfill(response=response)
        except PlaywrightError as exc:
            log.debug("request %s failed: %s", url, exc)
            try:
                route.abort("failed")
            except PlaywrightError:
                pass  # the page went away meanwhile

    def _refuse(self, route, url: str) -> None:
        log.info("SSRF guard refused %s", url)
        self.blocked.append(url)
        route.abort("blockedbyclient")


@dataclass
class _FoundForm:
    frame: Any                      # playwright Frame
    snapshot: dict[str, Any]        # the frame's page snapshot
    form: dict[str, Any]            # the chosen form inside it
    controls: list[Control]


@dataclass
class _ClickReport:
    navigated: bool = False
    posted: bool = False            # a POST reached the server and got a non-error answer
    json_outcome: detect.Outcome | None = None
    replies: list[Any] = field(default_factory=list)


def resolve_chromium(playwright, chromium_path: str | None) -> str | None:
    """Executable to launch: the one asked for, else Playwright's own build, else Debian's."""
    if chromium_path:
        return chromium_path
    bundled = playwright.chromium.executable_path
    if bundled and os.path.exists(bundled):
        return None
    return SYSTEM_CHROMIUM if os.path.exists(SYSTEM_CHROMIUM) else None


class FormEngine:
    """Find a company's contact form and submit a message into it with a warm Chromium.

    ``with FormEngine(allow_hosts=[...]) as engine: result = engine.submit(url, sender, message)``
    """

    def __init__(self, allow_hosts: Iterable[str] = (), screenshot_dir: str | os.PathLike | None = None,
                 chromium_path: str | None = None, classify_unknown: UnknownFieldClassifier | None = None,
                 timeout: float = 15.0):
        self.allow_hosts = tuple(allow_hosts)
        self.screenshot_dir = Path(screenshot_dir) if screenshot_dir else None
        self.chromium_path = chromium_path
        self.classify_unknown = classify_unknown
        self.timeout = timeout
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._proxy: EgressProxy | None = None

    def __enter__(self) -> FormEngine:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self) -> None:
        if self._browser is not None:
            return
        from playwright.sync_api import sync_playwright  # heavy: only when a browser is really needed

        self._playwright = sync_playwright().start()
        # Every connection of the browser (pages, sub-requests, the guard's own fetches) goes through this proxy,
        # which connects only to addresses the SSRF guard approves as it connects: Chromium never resolves a
        # site's name itself, so a name cannot rebind between the guard's check and the connection.
        self._proxy = EgressProxy(lambda: self.allow_hosts, self.timeout)
        try:
            # Playwright launches with a fresh temporary user-data dir and removes it on close.
            self._browser = self._playwright.chromium.launch(
                executable_path=resolve_chromium(self._playwright, self.chromium_path),
                args=CHROMIUM_ARGS, headless=True, proxy={"server": self._proxy.url})
        except Exception:
            self._playwright.stop()
            self._playwright = None
            self._proxy.close()
            self._proxy = None
            raise

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()
            self._browser = None
        if self._playwright is not None:
            self._playwright.stop()
            self._playwright = None
        if self._proxy is not None:
            self._proxy.close()
            self._proxy = None

    def submit(self, url: str, sender: SenderProfile, message: str, subject: str | None = None,
               dry_run: bool = False, before_submit: Callable[[], bool] | None = None) -> FormResult:
        """Run one form. ``dry_run`` (review mode) fills the form and stops on the confirm
        screen, or right before the final click when there is none. ``before_submit`` is
        called once, right before the click that may submit (not before a click on a
        確認/confirm button); returning False aborts with nothing submitted."""
        if self._browser is None:
            self.start()
        run = _FormRun(self, sender, message, subject, dry_run, before_submit)
        try:
            return run.execute(url)
        except UnsafeUrlError as exc:
            return run.finish(Status.FAILED, f"refused by the SSRF guard: {exc}", final_url=url)
        except Exception as exc:  # a broken page must not take the worker down
            log.exception("form run on %s failed", url)
            return run.finish(Status.FAILED, f"{type(exc).__name__}: {exc}")
        finally:
            run.close()


class _FormRun:
    """State of one submit() call."""

    def __init__(self, engine: FormEngine, sender: SenderProfile, message: str, subject: str | None,
                 dry_run: bool, before_submit: Callable[[], bool] | None):
        self.engine = engine
        self.sender = sender
        self.message = message
        self.subject = subject or sender.subject or ""
        self.dry_run = dry_run
        self.before_submit = before_submit
        self.guard = NavigationGuard(engine.allow_hosts, engine.timeout)
        self.result = FormResult(status=Status.FAILED)
        self.run_id = uuid.uuid4().hex[:10]
        self.context: BrowserContext | None = None
        self.page: Page | None = None

    # ---- lifecycle ----------------------------------------------------------
    def execute(self, url: str) -> FormResult:
        check_url(url, self.engine.allow_hosts)
        browser = self.engine._browser
        assert browser is not None  # submit() starts the browser before it runs a form
        self.context = browser.new_context(
            locale="ja-JP", viewport={"width": 1280, "height": 900}, java_script_enabled=True)
        self.context.set_default_timeout(self.engine.timeout * 1000)
        self.context.route("**/*", self.guard.handle)
        self.page = self.context.new_page()
        found = self._locate_contact_form(url)
        if isinstance(found, FormResult):
            return found
        return self._fill_and_submit(found)

    @property
    def _page(self) -> Page:
        """The run's page: :meth:`execute` opens it before anything else uses it."""
        assert self.page is not None, "execute() opens the page first"
        return self.page

    def close(self) -> None:
        if self.context is not None:
            try:
                self.context.close()
            except Exception:  # the browser may already be gone; nothing left to release
                log.debug("closing the browser context failed", exc_info=True)
            self.context = None

    def finish(self, status: str, message: str, final_url: str | None = None) -> FormResult:
        self.result.status = status
        self.result.message = message
        if final_url is not None:
            self.result.final_url = final_url
        elif self.page is not None:
            try:
                self.result.final_url = self.page.url
            except Exception:
                pass
        return self.result

    # ---- finding the form ---------------------------------------------------
    def _open(self, url: str) -> bool:
        from playwright.sync_api import Error as PlaywrightError

        try:
            self._page.goto(url, wait_until="load")
            return True
        except PlaywrightError as exc:
            log.info("could not open %s: %s", url, str(exc).splitlines()[0])
            return False

    def _snapshots(self) -> list[tuple[Any, dict[str, Any]]]:
        from playwright.sync_api import Error as PlaywrightError

        snaps = []
        for frame in self._page.frames:
            try:
                snaps.append((frame, frame.evaluate(SNAPSHOT)))
            except PlaywrightError:
                continue  # cross-origin or detached frame
        return snaps

    def _best_form(self, snaps: list[tuple[Any, dict[str, Any]]]) -> _FoundForm | None:
        best: tuple[float, _FoundForm] | None = None
        for frame, snap in snaps:
            for form in snap["forms"]:
                controls = classify_form([FieldInfo.from_snapshot(f) for f in form["fields"]])
                score = detect.score_form(form, controls)
                if score is not None and (best is None or score > best[0]):
                    best = (score, _FoundForm(frame, snap, form, controls))
        return best[1] if best else None

    def _locate_contact_form(self, entry_url: str) -> _FoundForm | FormResult:
        queue: list[tuple[str, int]] = [(entry_url, 0)]
        visited: set[str] = set()
        loads = 0
        tried_common_paths = False
        while loads < MAX_PAGE_LOADS:
            if not queue:
                if tried_common_paths:
                    break
                tried_common_paths = True
                queue = [(urljoin(entry_url, path), MAX_LINK_DEPTH + 1) for path in detect.COMMON_CONTACT_PATHS]
                continue
            url, depth = queue.pop(0)
            key = url.split("#", 1)[0].rstrip("/")
            if key in visited:
                continue
            visited.add(key)
            loads += 1
            if not self._open(url):
                if loads == 1:
                    blocked = f" (blocked by the SSRF guard: {self.guard.blocked[-1]})" if self.guard.blocked else ""
                    return self.finish(Status.FAILED, f"could not open {url}{blocked}", final_url=url)
                continue
            visited.add(self._page.url.split("#", 1)[0].rstrip("/"))
            snaps = self._snapshots()
            for _, snap in snaps:
                refusal = detect.find_refusal(snap["text"])
                if refusal:
                    return self.finish(Status.REFUSED, f"the site refuses sales inquiries: 「{refusal}」")
            found = self._best_form(snaps)
            if found is not None:
                captcha = detect.find_captcha(found.snapshot, found.form["index"])
                if captcha:
                    return self.finish(Status.CAPTCHA, f"the contact form is protected by a CAPTCHA ({captcha})")
                return found
            if depth <= MAX_LINK_DEPTH:
                main = snaps[0][1] if snaps else {"links": []}
                links = detect.contact_links(main["links"], self._page.url, visited)
                queue[0:0] = [(link, depth + 1) for link in links[:3]]
        return self.finish(Status.NO_FORM, "no contact form found")

    # ---- filling --------------------------------------------------------------
    def _classify_unknown_with_hook(self, controls: list[Control]) -> None:
        unknown = [c for c in controls if c.semantic == UNKNOWN]
        if not unknown or self.engine.classify_unknown is None:
            return
        descriptions = [{
            "name": c.name, "kind": c.kind, "label": c.primary.labels or c.primary.aria_label,
            "header": c.primary.row_header, "placeholder": c.primary.placeholder, "required": c.required,
            "options": [o.get("text", "") for o in c.primary.options] or [m.labels for m in c.members],
        } for c in unknown]
        try:
            answers = self.engine.classify_unknown(descriptions) or {}
        except Exception:
            log.warning("the unknown-field classifier failed; those fields stay empty", exc_info=True)
            return
        for control in unknown:
            semantic = answers.get(control.name)
            if semantic in FILLABLE_SEMANTICS:
                control.semantic = semantic
                if "kana" in semantic:
                    control.kana_script = kana_script(control)

    def _fill_and_submit(self, found: _FoundForm) -> FormResult:
        controls = found.controls
        self._classify_unknown_with_hook(controls)
        lang = "en" if _is_english(found) else "ja"
        subject = self.subject or DEFAULT_SUBJECT[lang]
        plan = plan_fills(controls, self.sender, self.message, subject, english=lang == "en")
        actions = [asdict(action) for planned in plan for action in planned.actions]
        filled = {r["fid"]: r for r in found.frame.evaluate(FILL, actions)}
        self.result.fields = _report_fields(controls, plan, filled)
        invalid = found.frame.evaluate(INVALID_CONTROLS, found.form["index"])
        self._screenshot("filled")
        if invalid and not found.form.get("novalidate"):
            details = ", ".join(f"{c['name']} ({c['message']})" for c in invalid[:5])
            return self.finish(Status.FAILED, f"the form is not complete, nothing was submitted: {details}")

        choice = detect.primary_button(found.form["buttons"])
        button, kind = choice if choice else (None, detect.FINAL_BUTTON)
        if button is None and found.form["index"] < 0:
            return self.finish(Status.FAILED, "no submit button found")
        return self._submit_steps(found, button, kind)

    # ---- submitting -------------------------------------------------------------
    def _gate_final_click(self) -> FormResult | None:
        """Stop here in review mode or when the caller's before_submit says no."""
        if self.dry_run:
            self._screenshot("result")
            where = "on the confirm screen" if self.result.confirm_step else "before the final submit"
            return self.finish(Status.READY, f"review mode: form filled, stopped {where}")
        if self.before_submit is not None and not self.before_submit():
            return self.finish(Status.ABORTED, "before_submit declined: nothing was submitted")
        return None

    def _submit_steps(self, found: _FoundForm, button: dict[str, Any] | None, kind: str) -> FormResult:
        frame = found.frame
        url_before, text_before = frame.evaluate(PAGE_TEXT)
        editable_names = {c.name for c in found.controls if c.kind in (TEXT, TEXTAREA) and c.semantic != HONEYPOT}
        clicked_final = kind == detect.FINAL_BUTTON
        if clicked_final:
            stop = self._gate_final_click()
            if stop:
                return stop
        report = self._click(frame, button, found.form["index"])
        for _ in range(CONFIRM_SCREENS + 1):
            frame = frame if not frame.is_detached() else self._page.main_frame
            after = self._settled_snapshot(frame)
            still_editable = _editable_count(after, editable_names) >= max(1, len(editable_names) // 2)
            outcome = report.json_outcome or detect.classify_page(
                text_before, url_before, after["text"], after["url"], still_editable)
            if outcome.kind == detect.ERROR:
                self._screenshot("result")
                return self.finish(Status.FAILED, f"the site reported an error: {outcome.message}")
            if outcome.kind == detect.SUCCESS:
                self._screenshot("result")
                return self.finish(Status.SUBMITTED, f"submitted: {outcome.message}")
            changed = report.navigated or after["text"] != text_before
            final = detect.final_button(after["forms"]) if changed and not clicked_final else None
            if final is None:
                break
            self.result.confirm_step = True
            stop = self._gate_final_click()
            if stop:
                return stop
            clicked_final = True
            url_before, text_before = after["url"], after["text"]
            report = self._click(frame, final, None)
        self._screenshot("result")
        if clicked_final and report.posted and not still_editable:
            return self.finish(Status.SUBMITTED, "submitted; the site showed no recognisable thank-you message")
        if self.guard.blocked:
            return self.finish(Status.FAILED, f"the SSRF guard blocked {self.guard.blocked[-1]}")
        return self.finish(Status.FAILED, "the site did not confirm the submission")

    def _settled_snapshot(self, frame) -> dict[str, Any]:
        from playwright.sync_api import Error as PlaywrightError

        for _ in range(20):
            try:
                return frame.evaluate(SNAPSHOT)
            except PlaywrightError:  # a late navigation replaced the document: wait for the new one
                self._page.wait_for_timeout(100)
                frame = frame if not frame.is_detached() else self._page.main_frame
        return frame.evaluate(SNAPSHOT)

    def _click(self, frame, button: dict[str, Any] | None, form_index: int | None) -> _ClickReport:
        """Click and wait until the page has answered: a navigation has loaded, or the
        script's POST has been answered and rendered, or nothing happened at all."""
        from playwright.sync_api import Error as PlaywrightError

        report = _ClickReport()
        pending: set[Any] = set()
        responses: list[Any] = []
        posts_seen = [0]
        watched = {frame, self._page.main_frame}

        def on_navigated(navigated_frame) -> None:
            if navigated_frame in watched:
                report.navigated = True

        def on_request(request) -> None:
            if request.method != "GET" and request.resource_type in ("document", "xhr", "fetch"):
                pending.add(request)
                posts_seen[0] += 1

        def on_done(request) -> None:
            pending.discard(request)

        def on_response(response) -> None:
            if response.request.method != "GET" and response.request.resource_type in ("document", "xhr", "fetch"):
                responses.append(response)

        page = self._page
        listeners: tuple[tuple[WatchedPageEvent, Callable[[Any], None]], ...] = (
            ("framenavigated", on_navigated), ("request", on_request), ("requestfinished", on_done),
            ("requestfailed", on_done), ("response", on_response))
        for event, handler in listeners:
            page.on(event, handler)
        try:
            if button is not None:
                selector = f'[data-funnel-bid="{button["bid"]}"]'
                try:
                    frame.locator(selector).click(timeout=3000)
                except PlaywrightError:
                    # Covered by a banner or styled away: a DOM click still submits.
                    frame.evaluate("(s) => document.querySelector(s).click()", selector)
            else:
                frame.evaluate("(i) => { const f = document.forms[i]; "
                               "f.requestSubmit ? f.requestSubmit() : f.submit(); }", form_index)
            self._wait_for_answer(frame, report, pending, posts_seen)
        finally:
            for event, handler in listeners:
                page.remove_listener(event, handler)
        for response in responses:
            if response.status < 400:
                report.posted = True
            if "json" in (response.headers.get("content-type") or ""):
                try:
                    reply = response.json()
                except Exception:
                    continue  # not JSON after all, or the body is gone
                report.replies.append(reply)
                report.json_outcome = detect.classify_json_reply(reply) or report.json_outcome
        return report

    def _wait_for_answer(self, frame, report: _ClickReport, pending: set[Any], posts_seen: list[int]) -> None:
        from playwright.sync_api import Error as PlaywrightError

        page = self._page
        started = time.monotonic()
        deadline = started + self.engine.timeout
        while time.monotonic() < deadline:
            page.wait_for_timeout(40)
            if report.navigated:
                target = frame if not frame.is_detached() else page.main_frame
                while time.monotonic() < deadline:
                    try:
                        target.wait_for_load_state("load", timeout=max(1.0, deadline - time.monotonic()) * 1000)
                        if not target.evaluate(IS_REDIRECT_INTERSTITIAL):
                            return
                    except PlaywrightError:
                        pass  # navigating again (our redirect page): wait for the next document
                    page.wait_for_timeout(40)
                    target = frame if not frame.is_detached() else page.main_frame
                return
            if posts_seen[0] and not pending:
                # The script got its answer; give it a moment to render it or to navigate.
                page.wait_for_timeout(JS_REPLY_GRACE * 1000)
                if not report.navigated:
                    return
                continue
            if not posts_seen[0] and time.monotonic() - started > NO_ACTIVITY_CUTOFF:
                return

    # ---- artifacts ------------------------------------------------------------
    def _screenshot(self, label: str) -> None:
        directory = self.engine.screenshot_dir
        if directory is None or self.page is None:
            return
        try:
            directory.mkdir(parents=True, exist_ok=True)
            host = re.sub(r"[^A-Za-z0-9.-]+", "_", urlsplit(self.page.url).netloc) or "page"
            path = directory / f"{time.strftime('%Y%m%d-%H%M%S')}-{host}-{self.run_id}-{label}.png"
            self.page.screenshot(path=str(path), full_page=True, timeout=5000)
            self.result.screenshots.append(str(path))
        except Exception:  # a missing screenshot must not change the outcome
            log.warning("screenshot %s failed", label, exc_info=True)


def _is_english(found: _FoundForm) -> bool:
    lang = found.snapshot.get("lang", "")
    if lang:
        return lang.startswith("en")
    return not re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", found.form.get("text", ""))


def _report_fields(controls: list[Control], plan: list[PlannedFill], filled: dict[str, dict]) -> list[FieldFill]:
    planned_by_control = {id(p.control): p for p in plan}
    report = []
    for control in controls:
        planned = planned_by_control.get(id(control))
        value = ""
        if planned is not None:
            answer = filled.get(planned.actions[0].fid)
            value = answer["value"] if answer else planned.value
        report.append(FieldFill(control.name, control.semantic, value))
    return report


def _editable_count(snapshot: dict[str, Any], names: set[str]) -> int:
    """How many of the input form's text fields are still visible and editable."""
    count = 0
    for form in snapshot.get("forms", []):
        for info in form["fields"]:
            if (info.get("name") or info.get("id")) in names and info.get("visible") and not info.get("readonly") \
                    and info.get("type") not in ("hidden",):
                count += 1
    return count

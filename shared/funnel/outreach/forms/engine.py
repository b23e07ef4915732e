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

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, quote_plus, urljoin, urlsplit

from funnel.outreach.forms import detect
from funnel.outreach.forms.fields import (
    CHECKBOX,
    FILLABLE_SEMANTICS,
    HONEYPOT,
    RADIO,
    TEXT,
    TEXTAREA,
    UNKNOWN,
    Control,
    FieldInfo,
    classify_form,
    is_shown,
    kana_script,
)
from funnel.outreach.forms.fill import PlannedFill, plan_fills
from funnel.outreach.forms.model import FieldFill, FormResult, SenderProfile, Status
from funnel.outreach.forms.page_scripts import (
    CLICK,
    FILL,
    INVALID_CONTROLS,
    IS_REDIRECT_INTERSTITIAL,
    PAGE_TEXT,
    QUIET,
    REVEAL,
    SNAPSHOT,
    SUBMIT_FORM,
    WATCH_INIT,
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
MAX_CLICKS = 8              # wizard steps, confirm screens and the final click together
SETTLE_MAX = 3.0            # seconds a page may take to settle after it loaded or answered a click
EMBED_WAIT = 6.0            # further seconds for a known form embed (HubSpot, Marketo, ...) to render its form
QUIET_MS = 120              # the DOM still this long, no request in flight, no short timer pending: settled
MIN_CLICK_WAIT = 0.3        # seconds a click's script may take before it starts its work
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
    rejection: detect.Outcome | None = None   # the submission request answered 4xx/5xx
    replies: list[Any] = field(default_factory=list)


# A step ready to move on: the page after filling, the button to press (None: submit the form) and its kind.
_StepReady = tuple[dict[str, Any], dict[str, Any] | None, str]


@dataclass
class _Walk:
    """What the steps of one form have done so far."""
    english: bool
    subject: str
    done: set[str] = field(default_factory=set)           # fids filled, or left empty on purpose, on a step
    reported: dict[str, FieldFill] = field(default_factory=dict)
    editable: set[str] = field(default_factory=set)       # names of the text fields we could type into
    message_filled: bool = False
    steps: int = 0


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
        self._inflight: set[Any] = set()  # the page's requests not answered yet (any frame)

    # ---- lifecycle ----------------------------------------------------------
    def execute(self, url: str) -> FormResult:
        check_url(url, self.engine.allow_hosts)
        browser = self.engine._browser
        assert browser is not None  # submit() starts the browser before it runs a form
        self.context = browser.new_context(
            locale="ja-JP", viewport={"width": 1280, "height": 900}, java_script_enabled=True)
        self.context.set_default_timeout(self.engine.timeout * 1000)
        self.context.route("**/*", self.guard.handle)
        self.context.add_init_script(WATCH_INIT)
        self.page = self.context.new_page()
        self.page.on("request", self._request_started)
        self.page.on("requestfinished", self._request_ended)
        self.page.on("requestfailed", self._request_ended)
        found = self._locate_contact_form(url)
        if isinstance(found, FormResult):
            return found
        return self._fill_and_submit(found)

    def _request_started(self, request) -> None:
        self._inflight.add(request)

    def _request_ended(self, request) -> None:
        self._inflight.discard(request)

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
            self._settle()  # scripts may still fetch and render the form
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

    def _refusal(self, snaps: list[tuple[Any, dict[str, Any]]]) -> FormResult | None:
        for _, snap in snaps:
            refusal = detect.find_refusal(snap["text"])
            if refusal:
                return self.finish(Status.REFUSED, f"the site refuses sales inquiries: 「{refusal}」")
        return None

    def _best_form(self, snaps: list[tuple[Any, dict[str, Any]]]) -> _FoundForm | None:
        best: tuple[float, _FoundForm] | None = None
        for frame, snap in snaps:
            for form in snap["forms"]:
                controls = _with_outside_consent(classify_form([FieldInfo.from_snapshot(f) for f in form["fields"]]),
                                                 snap, form["index"])
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
            refused = self._refusal(snaps)
            if refused:
                return refused
            found = self._best_form(snaps)
            if found is None and any(snap.get("embed") for _, snap in snaps):
                # A form embed (HubSpot and the like) renders its form from further scripts: give it time.
                deadline = time.monotonic() + EMBED_WAIT
                while found is None and time.monotonic() < deadline:
                    self._page.wait_for_timeout(150)
                    self._settle(1.0)
                    snaps = self._snapshots()
                    refused = self._refusal(snaps)
                    if refused:
                        return refused
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
        """Fill the shown part of the form, press its button, and repeat while the click reveals
        another step of the form (a wizard); then press the send button of a confirm screen. The
        outcome is judged after every click: an error ends the run as ``failed``, and only evidence
        of acceptance makes it ``submitted``."""
        self._classify_unknown_with_hook(found.controls)
        english = _is_english(found)
        walk = _Walk(english=english, subject=self.subject or DEFAULT_SUBJECT["en" if english else "ja"])
        frame = found.frame
        step: _FoundForm | None = found
        after = found.snapshot
        clicked_final = False
        for _ in range(MAX_CLICKS):
            index: int | None
            if step is not None:
                ready = self._fill_step(step, walk)
                if isinstance(ready, FormResult):
                    return ready
                before, button, kind = ready
                index = step.form["index"]
            else:  # a confirm screen: only its send button moves on
                button = detect.final_button(after["forms"])
                if button is None:
                    break
                self.result.confirm_step = True
                before, kind, index = after, detect.FINAL_BUTTON, None
            if kind == detect.FINAL_BUTTON:
                stop = self._gate_final_click()
                if stop:
                    return stop
                clicked_final = True
            blocked_before = len(self.guard.blocked)
            report = self._click(frame, button, index)
            if len(self.guard.blocked) > blocked_before:  # the post itself never left the browser
                self._screenshot("result")
                return self.finish(Status.FAILED, f"the SSRF guard blocked {self.guard.blocked[-1]}")
            frame = frame if not frame.is_detached() else self._page.main_frame
            after = self._state(frame)
            outcome = self._judge(before, after, report, walk.editable)
            if outcome.kind == detect.ERROR:
                self._screenshot("result")
                return self.finish(Status.FAILED, f"the site reported an error: {outcome.message}")
            if outcome.kind == detect.SUCCESS:
                self._screenshot("result")
                return self.finish(Status.SUBMITTED, f"submitted: {outcome.message}")
            if clicked_final or not (report.navigated or after["text"] != before["text"]):
                break
            step = self._next_step(frame, after, walk, same_document=not report.navigated, index=index)
        self._screenshot("result")
        if self.guard.blocked:
            return self.finish(Status.FAILED, f"the SSRF guard blocked {self.guard.blocked[-1]}")
        said = detect.new_lines(before["text"], after["text"])[:3]
        return self.finish(Status.FAILED, "the site did not confirm the submission"
                           + (f"; it showed: {' / '.join(said)}" if said else ""))

    def _fill_step(self, step: _FoundForm, walk: _Walk) -> _StepReady | FormResult:
        """Fill the controls of ``step`` that are shown and not filled on an earlier step. Returns the page
        after filling, the button that moves on and its kind, or the result when the run must stop here."""
        frame, index = step.frame, step.form["index"]
        consent = [m.fid for c in step.controls if c.semantic == "consent" for m in c.members]
        locked = any(m.disabled for c in step.controls if c.kind in (CHECKBOX, RADIO) for m in c.members)
        if frame.evaluate(REVEAL, [index, consent]) and locked:
            self._settle(1.5)  # a terms box scrolled to its end may enable its checkbox now
            step = self._form_in(frame, self._settled_snapshot(frame), index) or step
        controls = [c for c in step.controls if not _later_step(c)]
        names_done = walk.done.copy()
        plan = [p for p in plan_fills(step.controls, self.sender, self.message, walk.subject, english=walk.english)
                if not _later_step(p.control) and not _fids(p.control) <= names_done]
        actions = [asdict(action) for planned in plan for action in planned.actions]
        filled = {r["fid"]: r for r in frame.evaluate(FILL, actions)} if actions else {}
        for control in controls:
            walk.done |= _fids(control)
            if control.kind in (TEXT, TEXTAREA) and control.semantic != HONEYPOT:
                walk.editable.add(control.name)
        walk.message_filled |= any(p.control.semantic == "message" for p in plan)
        for fill in _report_fields([c for c in controls if not _fids(c) <= names_done], plan, filled):
            walk.reported[fill.name] = fill
        self.result.fields = list(walk.reported.values())
        self._settle(1.0)  # the page's own checks on input/blur
        after = self._settled_snapshot(frame)
        form = next((f for f in after["forms"] if f["index"] == index), step.form)
        self._screenshot("filled" if walk.steps == 0 else f"step{walk.steps + 1}")
        walk.steps += 1
        captcha = detect.find_captcha(after, index)
        if captcha:  # loaded only once a field was used: it guards the form all the same
            return self.finish(Status.CAPTCHA, f"the contact form is protected by a CAPTCHA ({captcha})")
        marks = detect.classify_marks(step.snapshot, after)
        if marks:
            return self.finish(Status.FAILED,
                               f"the form shows errors once filled, nothing was submitted: {marks.message}")
        choice = detect.primary_button(form["buttons"])
        button, kind = choice if choice else (None, detect.FINAL_BUTTON)
        # Advancing to the next step only needs the shown controls to be valid; the final click needs them all.
        invalid = frame.evaluate(INVALID_CONTROLS, [index, kind != detect.FINAL_BUTTON])
        if invalid and not form.get("novalidate"):
            details = ", ".join(f"{c['name']} ({c['message']})" for c in invalid[:5])
            return self.finish(Status.FAILED, f"the form is not complete, nothing was submitted: {details}")
        if kind == detect.FINAL_BUTTON and not walk.message_filled:
            return self.finish(Status.FAILED, "the form showed no message field before its send button; "
                                              "nothing was submitted")
        if button is None and index < 0:
            return self.finish(Status.FAILED, "no submit button found")
        return after, button, kind

    def _form_in(self, frame, snapshot: dict[str, Any], index: int) -> _FoundForm | None:
        for form in snapshot["forms"]:
            if form["index"] == index:
                controls = classify_form([FieldInfo.from_snapshot(f) for f in form["fields"]])
                return _FoundForm(frame, snapshot, form, _with_outside_consent(controls, snapshot, index))
        return None

    def _next_step(self, frame, snapshot: dict[str, Any], walk: _Walk, same_document: bool,
                   index: int | None) -> _FoundForm | None:
        """The form on the page after a click, when it shows controls to fill that no earlier step had
        (the next step of a wizard); None on a confirm screen or a page without such a form. Another form
        than the one just used must look like a contact form itself (a newsletter box on a confirm screen
        is no step)."""
        for form in snapshot["forms"]:
            if detect.is_other_purpose(form):
                continue
            candidate = self._form_in(frame, snapshot, form["index"])
            if candidate is None:
                continue
            if not (same_document and form["index"] == index) and detect.score_form(form, candidate.controls) is None:
                continue
            fresh = [c for c in candidate.controls if c.semantic not in (HONEYPOT, UNKNOWN) and not _later_step(c)
                     and is_shown(c) and not _fids(c) <= walk.done
                     and not any(m.readonly or m.disabled for m in c.members)]
            if fresh:
                return candidate
        return None

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

    def _state(self, frame) -> dict[str, Any]:
        """The form's frame as it is now; when the form lives in an iframe, the text of the page around it
        counts too (an embed may announce its outcome outside the frame)."""
        from playwright.sync_api import Error as PlaywrightError

        snapshot = self._settled_snapshot(frame)
        if frame is not self._page.main_frame:
            try:
                snapshot["text"] += "\n" + self._page.main_frame.evaluate(PAGE_TEXT)[1]
            except PlaywrightError:
                pass  # the page is navigating: the frame's own text is what there is
        return snapshot

    def _judge(self, before: dict[str, Any], after: dict[str, Any], report: _ClickReport,
               editable_names: set[str]) -> detect.Outcome:
        """What the site answered, strongest evidence first: the submission request refused (4xx/5xx),
        the site's JSON verdict, error lines new on the page, fields marked invalid or a new error
        summary, then thanks lines or a thanks URL. Anything else is no evidence of acceptance."""
        if report.rejection is not None:
            return report.rejection
        if report.json_outcome is not None:
            return report.json_outcome
        still_editable = _editable_count(after, editable_names) >= max(1, len(editable_names) // 2)
        page = detect.classify_page(before["text"], before["url"], after["text"], after["url"], still_editable)
        if page.kind == detect.ERROR:
            return page
        return detect.classify_marks(before, after) or page

    def _settled_snapshot(self, frame) -> dict[str, Any]:
        from playwright.sync_api import Error as PlaywrightError

        for _ in range(20):
            try:
                return frame.evaluate(SNAPSHOT)
            except PlaywrightError:  # a late navigation replaced the document: wait for the new one
                self._page.wait_for_timeout(100)
                frame = frame if not frame.is_detached() else self._page.main_frame
        return frame.evaluate(SNAPSHOT)

    # ---- waiting like a person ---------------------------------------------------
    def _settle(self, limit: float = SETTLE_MAX, min_wait: float = 0.0) -> bool:
        """Wait until no request is in flight and every frame's DOM has been still for QUIET_MS with no short
        timer pending (a form shown and still for a while also counts), at most ``limit`` seconds."""
        started = time.monotonic()
        quiet_before = False
        while True:
            # Quiet twice in a row: the browser's request events reach us a moment after the request starts.
            quiet = time.monotonic() - started >= min_wait and not self._inflight and self._frames_quiet()
            if quiet and quiet_before:
                return True
            quiet_before = quiet
            if time.monotonic() - started >= limit:
                return False
            self._page.wait_for_timeout(50)

    def _frames_quiet(self) -> bool:
        from playwright.sync_api import Error as PlaywrightError

        for frame in self._page.frames:
            try:
                idle_ms, busy, formish = frame.evaluate(QUIET)
            except PlaywrightError:
                continue  # detached or navigating: its requests are what the caller watches
            if idle_ms < QUIET_MS or (busy and not (formish and idle_ms >= 3 * QUIET_MS)):
                return False
        return True

    def _carries_form_data(self, request) -> bool:
        """Whether a request sends what we filled in (the e-mail address or the message): the submission."""
        try:
            body = (request.post_data_buffer or b"").decode("utf-8", "ignore")
        except Exception:  # no body, or it is gone
            return False
        for value in (self.sender.email, self.message.strip()[:24]):
            if value and any(form in body for form in (value, quote_plus(value), quote(value),
                                                       json.dumps(value, ensure_ascii=False)[1:-1],
                                                       json.dumps(value)[1:-1])):
                return True
        return False

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
            try:
                if button is not None:
                    selector = f'[data-funnel-bid="{button["bid"]}"]'
                    try:
                        frame.locator(selector).click(timeout=3000)
                    except PlaywrightError:
                        # Covered by a banner or styled away: a DOM click still submits. Unless the first click
                        # did go through (a slow page timed the click out after it): never a second submission.
                        if not (report.navigated or posts_seen[0]):
                            frame.evaluate(CLICK, selector)
                else:
                    frame.evaluate(SUBMIT_FORM, form_index)
            except PlaywrightError as exc:
                # The click navigated while the script still ran: the page answers; anything else is a failure.
                if "Execution context was destroyed" not in str(exc) and not report.navigated:
                    raise
                report.navigated = True
            self._wait_for_answer(frame, report, pending, posts_seen)
        finally:
            for event, handler in listeners:
                page.remove_listener(event, handler)
        for response in responses:
            self._read_reply(response, report)
        return report

    def _read_reply(self, response, report: _ClickReport) -> None:
        """Take what the site answered to a POST into the report: a refusal of the submission (4xx/5xx to the
        request that carried our values, or to a form post), or its JSON verdict."""
        request = response.request
        content_type = response.headers.get("content-type") or ""
        carries = self._carries_form_data(request)
        if response.status < 400:
            report.posted = True
        body, reply = "", None
        if "json" in content_type or response.status >= 400:
            try:
                body = response.text()[:20000]
            except Exception:  # the body is gone (a navigation replaced the document)
                body = ""
            if "json" in content_type:
                try:
                    reply = json.loads(body)
                except ValueError:
                    reply = None
        if response.status >= 400 and (carries or request.resource_type == "document"):
            report.rejection = report.rejection or detect.rejection(response.status, reply, body)
            return
        if reply is not None:
            report.replies.append(reply)
            report.json_outcome = detect.classify_json_reply(reply) or report.json_outcome

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
                            self._settle()  # a thanks page may render its message with a script
                            return
                    except PlaywrightError:
                        pass  # navigating again (our redirect page): wait for the next document
                    page.wait_for_timeout(40)
                    target = frame if not frame.is_detached() else page.main_frame
                return
            if posts_seen[0] and not pending:
                # The script got its answer: let it render it (or navigate) until the page settles.
                self._settle()
                if not report.navigated:
                    return
                continue
            if not posts_seen[0]:
                waited = time.monotonic() - started
                if waited > NO_ACTIVITY_CUTOFF:
                    return
                if waited >= MIN_CLICK_WAIT and not self._inflight and self._frames_quiet():
                    return  # a script-only step (a wizard's next page): shown and still

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


def _fids(control: Control) -> set[str]:
    return {member.fid for member in control.members}


def _later_step(control: Control) -> bool:
    """Hidden in a wizard step that is not shown yet: filled when its step comes."""
    return any(member.later_step for member in control.members) and not is_shown(control)


def _with_outside_consent(controls: list[Control], snapshot: dict[str, Any], form_index: int) -> list[Control]:
    """A form without its own consent box gets the page's consent checkbox placed outside any form."""
    if form_index < 0 or any(c.semantic == "consent" for c in controls):
        return controls
    outside = classify_form([FieldInfo.from_snapshot(f) for f in snapshot.get("orphan_checks", [])])
    return controls + [c for c in outside if c.semantic == "consent"]


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

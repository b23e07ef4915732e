"""JavaScript run inside the page: one snapshot call and one fill call per form.

Collecting everything in a single ``evaluate`` keeps a form run to a handful of
round trips to the browser, which is what makes a warm run take well under a
second. Controls and buttons are tagged with ``data-funnel-fid`` /
``data-funnel-bid`` so later calls can find them again.

Every script looks through open shadow roots as well as the document (``DEEP``): a form rendered
inside a web component is found, filled and judged like any other. Forms are numbered in that deep
order (the document's forms first, then those of each shadow root).
"""
import json

# Shared by the scripts below: every open shadow root of the document, and queries across all of them.
DEEP = r"""
  const deepRoots = () => {
    const roots = [document];
    for (let i = 0; i < roots.length; i++) {
      for (const el of roots[i].querySelectorAll('*')) if (el.shadowRoot) roots.push(el.shadowRoot);
    }
    return roots;
  };
  const deepAll = (selector) => deepRoots().flatMap((root) => Array.from(root.querySelectorAll(selector)));
  const deepOne = (selector) => {
    for (const root of deepRoots()) { const found = root.querySelector(selector); if (found) return found; }
    return null;
  };
  const deepForms = () => deepAll('form');
  // innerText leaves shadow content out: add the text of every shadow root.
  const deepText = () => [document.body ? document.body.innerText || '' : '']
    .concat(deepRoots().slice(1).map((root) => Array.from(root.children)
      .map((child) => child.innerText || '').join('\n'))).join('\n');
"""


def _with_deep(script: str) -> str:
    """``script`` (an arrow function) with the DEEP helpers in scope."""
    head, body = script.split("{", 1)
    return head + "{" + DEEP + body

SNAPSHOT_BODY = r"""
() => {
  const CONTROLS = 'input, select, textarea';
  const BUTTONS = 'button, input[type=submit], input[type=image], input[type=button], [role=button], a[onclick], '
    + 'a[href^="javascript"]';
  const SKIP_TEXT = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'SELECT', 'OPTION', 'TEXTAREA', 'TEMPLATE']);
  const CAPTCHA = '.g-recaptcha, .grecaptcha-badge, .h-captcha, .cf-turnstile, .frc-captcha, [data-sitekey], '
    + 'textarea[name="g-recaptcha-response"], textarea[name="h-captcha-response"], '
    + 'input[name="cf-turnstile-response"], '
    + 'input[name="_wpcf7_recaptcha_response"], .wpcf7-recaptcha, [class*="captcha" i], [id*="captcha" i], '
    + '[name*="captcha" i], img[src*="captcha" i]';
  const clean = (s) => (s || '').replace(/[\s\u00a0]+/g, ' ').trim();
  const textOf = (root, limit = 400) => {
    if (!root) return '';
    if (root.nodeType === 3) return clean(root.nodeValue).slice(0, limit);
    const parts = [];
    let total = 0;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
      acceptNode(node) {
        for (let p = node.parentElement; p && p !== root.parentElement; p = p.parentElement) {
          if (SKIP_TEXT.has(p.tagName)) return NodeFilter.FILTER_REJECT;
        }
        return NodeFilter.FILTER_ACCEPT;
      }
    });
    while (walker.nextNode() && total < limit * 2) {
      parts.push(walker.currentNode.nodeValue);
      total += walker.currentNode.nodeValue.length;
    }
    return clean(parts.join(' ')).slice(0, limit);
  };
  const pageWidth = Math.max(document.documentElement.scrollWidth, window.innerWidth);
  const isVisible = (el) => {
    if (!el || !el.isConnected) return false;
    if (el.checkVisibility && !el.checkVisibility({opacityProperty: true, visibilityProperty: true})) return false;
    const r = el.getBoundingClientRect();
    if (r.width < 2 || r.height < 2) return false;
    const x = r.left + window.scrollX, y = r.top + window.scrollY;
    return !(x + r.width <= 0 || y + r.height <= 0 || x >= pageWidth + 50);
  };
  const isInline = (el) => getComputedStyle(el).display.startsWith('inline');
  const blockParent = (el) => {
    let p = el.parentElement;
    while (p && p !== document.body && p.tagName !== 'FORM' && isInline(p)) p = p.parentElement;
    return p;
  };
  const rowOf = (el) => el.closest('tr, dd, li') || blockParent(el);
  const hasControl = (el) => el.matches(CONTROLS) || !!el.querySelector(CONTROLS);

  const headerOf = (el) => {
    const cell = el.closest('td, dd');
    if (cell && cell.tagName === 'DD') {
      let dt = cell.previousElementSibling;
      while (dt && dt.tagName !== 'DT') dt = dt.previousElementSibling;
      if (dt) return textOf(dt, 120);
    } else if (cell) {
      let prev = cell.previousElementSibling;
      while (prev && !textOf(prev, 120)) prev = prev.previousElementSibling;
      if (prev && !hasControl(prev)) return textOf(prev, 120);
      const row = cell.parentElement;
      const above = row && row.previousElementSibling;
      if (above && !hasControl(above)) {
        const headerCell = above.children[Array.from(row.children).indexOf(cell)];
        if (headerCell) return textOf(headerCell, 120);
      }
    }
    const fieldset = el.closest('fieldset');
    if (fieldset && fieldset.querySelectorAll(CONTROLS).length <= 6) {
      const legend = fieldset.querySelector('legend');
      if (legend) return textOf(legend, 120);
    }
    let node = el;
    for (let depth = 0; depth < 3 && node && node.tagName !== 'FORM' && node !== document.body; depth++) {
      for (let sib = node.previousElementSibling; sib; sib = sib.previousElementSibling) {
        if (hasControl(sib)) break;
        const t = textOf(sib, 120);
        if (t) return t.length <= 80 ? t : '';
      }
      node = node.parentElement;
    }
    return '';
  };

  // Text printed right before / after a control on the same line ("姓 [ ]", "〒[ ]", "[ ]（全角カタカナ）").
  const inlineText = (el, backwards) => {
    let anchor = el;
    while (anchor.parentElement && anchor.parentElement.tagName !== 'LABEL' && isInline(anchor.parentElement)
           && anchor.parentElement.querySelectorAll(CONTROLS).length === 1) anchor = anchor.parentElement;
    const parts = [];
    let total = 0;
    for (let n = backwards ? anchor.previousSibling : anchor.nextSibling; n && total < 80;
         n = backwards ? n.previousSibling : n.nextSibling) {
      let t = '';
      if (n.nodeType === 3) t = n.nodeValue;
      else if (n.nodeType === 1) {
        if (hasControl(n)) break;
        if (n.tagName === 'BR') { if (backwards) break; continue; }
        if (!isInline(n)) break;
        t = textOf(n, 80);
      }
      t = clean(t);
      if (!t) continue;
      if (backwards) parts.unshift(t); else parts.push(t);
      total += t.length;
    }
    return clean(parts.join(' ')).slice(0, 80);
  };

  const seq = () => (window.__funnelSeq = (window.__funnelSeq || 0) + 1);
  // A hidden control that belongs to a later step of a wizard rather than being a trap: its hidden
  // container holds two controls or more and looks like a step (its name says so, a fieldset, or a
  // visible sibling holding controls: the current step).
  const STEP_WORDS = /step|page|wizard|stage|slide|panel|pane|tab|screen|phase|section/i;
  const countControls = (node) => Array.from(node.querySelectorAll(CONTROLS)).filter((c) => !['hidden', 'submit',
    'button', 'image', 'reset'].includes((c.getAttribute('type') || '').toLowerCase())).length;
  const laterStep = (el, form) => {
    if (!form || isVisible(el)) return false;
    let hidden = null;
    for (let p = el.parentElement; p && p !== form; p = p.parentElement) {
      if (p.checkVisibility && !p.checkVisibility({visibilityProperty: true})) hidden = p;
    }
    if (!hidden || countControls(hidden) < 2) return false;
    const names = [hidden.id, hidden.getAttribute('class') || '', Object.keys(hidden.dataset).join(' ')].join(' ');
    if (STEP_WORDS.test(names) || hidden.tagName === 'FIELDSET') return true;
    const parent = hidden.parentElement;
    return !!parent && Array.from(parent.children).some((s) => s !== hidden && isVisible(s) && countControls(s) >= 2);
  };
  const describeField = (el, form) => {
    if (!el.dataset.funnelFid) el.dataset.funnelFid = 'f' + seq();
    const type = (el.getAttribute('type') || '').toLowerCase();
    const labels = Array.from(el.labels || []);
    let labelText = clean(labels.map((l) => textOf(l, 150)).join(' '));
    const suffix = inlineText(el, false);
    if (!labelText && (type === 'radio' || type === 'checkbox')) labelText = suffix;
    const ariaIds = (el.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean);
    const owner = el.getRootNode().getElementById ? el.getRootNode() : document;
    const aria = clean([el.getAttribute('aria-label') || '']
      .concat(ariaIds.map((id) => textOf(owner.getElementById(id), 120))).join(' '));
    const row = rowOf(el);
    return {
      fid: el.dataset.funnelFid, tag: el.tagName.toLowerCase(), type, name: el.getAttribute('name') || '',
      id: el.id || '', placeholder: el.getAttribute('placeholder') || '',
      autocomplete: el.getAttribute('autocomplete') || '', aria_label: aria, labels: labelText,
      title: el.getAttribute('title') || '', pattern: el.getAttribute('pattern') || '',
      maxlength: el.maxLength === undefined ? -1 : el.maxLength,
      required: el.required || el.getAttribute('aria-required') === 'true' || /required/i.test(el.className),
      readonly: !!el.readOnly, disabled: !!el.disabled, visible: isVisible(el),
      label_visible: labels.some(isVisible), container_visible: isVisible(row), later_step: laterStep(el, form),
      aria_hidden: !!el.closest('[aria-hidden="true"]'), tabindex: el.getAttribute('tabindex') || '',
      row_header: headerOf(el), prefix: inlineText(el, true), suffix, row_text: textOf(row, 300),
      row_key: row ? (row.dataset.funnelRow || (row.dataset.funnelRow = 'r' + seq())) : '',
      value: el.value || '', checked: !!el.checked,
      options: el.tagName === 'SELECT'
        ? Array.from(el.options).slice(0, 120).map((o) => ({value: o.value, text: clean(o.text)})) : [],
    };
  };
  const describeButton = (el) => {
    if (!el.dataset.funnelBid) el.dataset.funnelBid = 'b' + seq();
    const text = el.tagName === 'INPUT'
      ? (el.value || el.getAttribute('alt') || '') : (textOf(el, 80) || el.getAttribute('value') || '');
    return {
      bid: el.dataset.funnelBid, tag: el.tagName.toLowerCase(),
      type: el.tagName === 'BUTTON' ? (el.getAttribute('type') || 'submit').toLowerCase()
        : (el.getAttribute('type') || '').toLowerCase(),
      text: clean(text || el.getAttribute('aria-label') || el.getAttribute('title') || ''),
      visible: isVisible(el), disabled: !!el.disabled,
    };
  };
  const allForms = deepForms();
  const formIndex = (el) => {
    const form = el.closest('form') || el.form;
    return form ? allForms.indexOf(form) : -1;
  };

  const describeForm = (index, controls, buttons, root) => ({
    index,
    attrs: root ? clean(['id', 'class', 'name', 'action', 'aria-label', 'role']
      .map((a) => root.getAttribute(a) || '').join(' ')) : '',
    text: root ? textOf(root, 1500) : '',
    novalidate: root ? !!root.noValidate : true,
    has_password: controls.some((c) => c.type === 'password'),
    is_search: !!root && (root.getAttribute('role') === 'search' || controls.some((c) => c.type === 'search')),
    fields: controls.filter((c) => !['hidden', 'submit', 'button', 'image', 'reset'].includes(
      (c.getAttribute('type') || '').toLowerCase())).map((c) => describeField(c, root)),
    buttons: buttons.map(describeButton),
  });
  const forms = allForms.map((form, index) => {
    const controls = Array.from(form.elements).filter((e) => e.matches(CONTROLS));
    const buttons = Array.from(new Set(Array.from(form.elements).filter((e) => e.matches(BUTTONS))
      .concat(Array.from(form.querySelectorAll(BUTTONS)))));
    return describeForm(index, controls, buttons, form);
  });
  // Controls outside any <form> (script-driven forms): one pseudo form with index -1.
  const orphans = deepAll(CONTROLS).filter((e) => !e.form && !e.closest('form'));
  if (orphans.some((e) => e.tagName === 'TEXTAREA' || (e.type || '').toLowerCase() === 'email')) {
    const buttons = deepAll(BUTTONS).filter((e) => !e.form && !e.closest('form'));
    forms.push(describeForm(-1, orphans, buttons, null));
  }
  // Consent boxes placed outside the form they belong to (beside its send button, under the terms).
  const orphanChecks = forms.some((f) => f.index === -1) ? []
    : orphans.filter((e) => (e.type || '').toLowerCase() === 'checkbox').slice(0, 5).map((c) => describeField(c, null));
  // What the page says about the last submission: error summaries, messages next to fields, alerts.
  const ALERTS = '[role=alert], [aria-live=assertive], .error, .errors, .error-message, .error-summary, '
    + '.invalid-feedback, .field-error, .form-error, .wpcf7-not-valid-tip, .hs-error-msgs, .mktoError, '
    + '.validation-summary-errors, .field-validation-error, [class*="error" i], [id*="error" i]';
  const alerts = Array.from(new Set(deepAll(ALERTS).filter((n) => n.tagName !== 'FORM' && isVisible(n))
    .map((n) => textOf(n, 200)).filter(Boolean))).slice(0, 20);
  const describedText = (el) => (el.getAttribute('aria-errormessage') || el.getAttribute('aria-describedby') || '')
    .split(/\s+/).filter(Boolean).map((id) => {
      const owner = el.getRootNode().getElementById ? el.getRootNode() : document;
      return textOf(owner.getElementById(id), 200);
    }).join(' ');
  const invalid = deepAll('[aria-invalid="true"]').filter(isVisible).slice(0, 20).map((el) => ({
    name: el.getAttribute('name') || el.id || '', message: clean(describedText(el)),
  }));
  const EMBEDS = '.hs-form-frame, .hbspt-form, [id^="hbspt-form"], [data-hs-forms-root], .mktoForm, '
    + '[id^="mktoForm_"], [data-tf-widget], [data-tf-live], .typeform-widget, [data-formrun-form], .formrun-embed, '
    + '.wufoo-form-container, .jotform-form, .ctct-inline-form, .pardot-form, .klaviyo-form, [data-paperform-id], '
    + '[data-form-embed], [data-embed-form], .form-embed';
  // Form embeds only: the tracking scripts of the same vendors (hs-scripts, munchkin) are on every page.
  const EMBED_SCRIPT = /hsforms|forms2(\.min)?\.js|embed\.typeform|form\.run|wufoo|jotform|formstack|pardot\.com\/l\//i;
  const embedNode = deepAll(EMBEDS)[0];
  const embedScript = Array.from(document.scripts).map((s) => s.src).find((src) => src && EMBED_SCRIPT.test(src));

  const body = document.body;
  return {
    url: location.href, lang: (document.documentElement.lang || '').toLowerCase(), title: document.title,
    content_type: document.contentType, redirecting: !!document.querySelector('meta[name="funnel-redirect"]'),
    text: deepText().slice(0, 30000),
    scripts: Array.from(document.scripts).map((s) => s.src).filter(Boolean),
    inline_captcha: Array.from(document.scripts).some((s) => !s.src
      && /grecaptcha|hcaptcha|turnstile\.render|cf-turnstile/i.test(s.textContent || '')),
    iframes: deepAll('iframe').map((f) => f.src || ''),
    captcha_nodes: deepAll(CAPTCHA).slice(0, 20).map((n) => ({
      what: clean((n.getAttribute('class') || n.getAttribute('name') || n.id || n.tagName).slice(0, 80)),
      form: formIndex(n),
    })),
    links: deepAll('a[href]').slice(0, 800).map((a) => ({
      href: a.href,
      text: clean(textOf(a, 80) || a.getAttribute('title') || a.getAttribute('aria-label')
        || (a.querySelector('img') ? a.querySelector('img').getAttribute('alt') : '') || ''),
    })),
    forms, orphan_checks: orphanChecks, alerts, invalid,
    embed: embedNode ? clean((embedNode.getAttribute('class') || embedNode.id || embedNode.tagName).slice(0, 80))
      : (embedScript || ''),
  };
}
"""

FILL_BODY = r"""
(actions) => {
  const nativeSetter = (el) => {
    const proto = el.tagName === 'TEXTAREA' ? HTMLTextAreaElement.prototype
      : el.tagName === 'SELECT' ? HTMLSelectElement.prototype : HTMLInputElement.prototype;
    return Object.getOwnPropertyDescriptor(proto, 'value').set;
  };
  // The prototype setter also updates frameworks (React) that shadow the value property.
  const setValue = (el, value) => nativeSetter(el).call(el, value);
  const fire = (el, names) => names.forEach((n) => el.dispatchEvent(new Event(n, {bubbles: true})));
  const results = [];
  for (const action of actions) {
    const el = deepOne(`[data-funnel-fid="${action.fid}"]`);
    if (!el) { results.push({fid: action.fid, value: '', valid: false, message: 'control disappeared'}); continue; }
    if (action.mode === 'check') {
      if (!el.checked) el.click();
      if (!el.checked) { el.checked = true; fire(el, ['input', 'change']); }
      results.push({fid: action.fid, value: el.value, valid: el.checked, message: ''});
      continue;
    }
    if (action.mode === 'select') {
      setValue(el, action.candidates[0]);
      fire(el, ['input', 'change']);
      results.push({fid: action.fid, value: el.value, valid: el.value === action.candidates[0], message: ''});
      continue;
    }
    if (el.focus) el.focus({preventScroll: true});
    // First candidate the browser's own validation accepts (pattern, type, maxlength) wins.
    let chosen = null;
    for (const value of action.candidates) {
      if (el.maxLength > 0 && value.length > el.maxLength) continue;
      setValue(el, value);
      if (el.validity.valid || el.validity.valueMissing) { chosen = value; break; }
    }
    if (chosen === null) setValue(el, action.candidates[0]);
    fire(el, ['input', 'change']);
    if (el.blur) el.blur();
    results.push({fid: action.fid, value: el.value, valid: el.validity.valid, message: el.validationMessage});
  }
  return results;
}
"""

# Controls of one form (index -1: the controls outside any form) that the browser would refuse to submit;
# with ``shownOnly`` only those on screen (the current step of a wizard).
INVALID_CONTROLS = _with_deep(r"""
([formIndex, shownOnly]) => {
  const form = formIndex >= 0 ? deepForms()[formIndex] : null;
  const controls = form ? Array.from(form.elements)
    : deepAll('input, select, textarea').filter((e) => !e.form);
  const shown = (e) => !!e.checkVisibility && e.checkVisibility({visibilityProperty: true})
    || Array.from(e.labels || []).some((l) => l.checkVisibility && l.checkVisibility());
  return controls.filter((e) => e.willValidate && !e.validity.valid && (!shownOnly || shown(e))).map((e) => ({
    fid: e.dataset.funnelFid || '', name: e.getAttribute('name') || e.id || '', message: e.validationMessage,
  }));
}
""")

# Submit form number ``index`` of the deep order as its own submit button would (index -1 has no form element).
SUBMIT_FORM = _with_deep(r"""
(index) => { const f = deepForms()[index]; f.requestSubmit ? f.requestSubmit() : f.submit(); }
""")

CLICK = _with_deep("(selector) => { deepOne(selector).click(); }")

# A person scrolls through a terms box before ticking "I agree" (some boxes enable it only then) and scrolls
# the consent box into view: every scrollable box of the form, then each of the given controls.
REVEAL = _with_deep(r"""
([formIndex, fids]) => {
  const form = formIndex >= 0 ? deepForms()[formIndex] : null;
  const scope = form ? Array.from(form.querySelectorAll('*')) : deepAll('*');
  let scrolled = 0;
  for (const box of scope) {
    const style = getComputedStyle(box);
    if (box.scrollHeight > box.clientHeight + 4 && /(auto|scroll)/.test(style.overflowY)) {
      box.scrollTop = box.scrollHeight;
      box.dispatchEvent(new Event('scroll'));
      scrolled += 1;
    }
  }
  for (const fid of fids) {
    const el = deepOne(`[data-funnel-fid="${fid}"]`);
    if (el) { (el.labels && el.labels[0] || el).scrollIntoView({block: 'center'}); scrolled += 1; }
  }
  return scrolled;
}
""")

# Installed in every frame before the page's own scripts: when the DOM last changed (our data-funnel-* tags
# aside) and how many short timers are pending, so the engine can wait for a page to settle the way a
# person would (the network quiet, nothing moving, nothing scheduled) instead of sleeping a fixed time.
WATCH_INIT = r"""
(() => {
  if (window.__funnelWatch) return;
  const watch = window.__funnelWatch = {lastChange: performance.now(), pending: new Set()};
  const onChange = (records) => {
    if (records.some((r) => r.type !== 'attributes' || !(r.attributeName || '').startsWith('data-funnel'))) {
      watch.lastChange = performance.now();
    }
  };
  const options = {subtree: true, childList: true, attributes: true, characterData: true};
  new MutationObserver(onChange).observe(document, options);
  const attach = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) {
    const root = attach.call(this, init);
    new MutationObserver(onChange).observe(root, options);
    return root;
  };
  const setTimer = window.setTimeout, clearTimer = window.clearTimeout;
  window.setTimeout = function (callback, delay, ...rest) {
    if (typeof callback !== 'function' || Number(delay) > 5000) return setTimer.call(this, callback, delay, ...rest);
    const id = setTimer.call(this, function () { watch.pending.delete(id); return callback.apply(this, arguments); },
      delay, ...rest);
    watch.pending.add(id);
    return id;
  };
  window.clearTimeout = function (id) { watch.pending.delete(id); return clearTimer.call(this, id); };
  // Script requests count from the moment they are made (the browser reports them to the engine a little later).
  watch.requests = 0;
  const realFetch = window.fetch;
  if (realFetch) {
    window.fetch = function (...args) {
      watch.requests += 1;
      return realFetch.apply(this, args).finally(() => { watch.requests -= 1; watch.lastChange = performance.now(); });
    };
  }
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (...args) {
    watch.requests += 1;
    this.addEventListener('loadend', () => { watch.requests -= 1; watch.lastChange = performance.now(); },
                          {once: true});
    return send.apply(this, args);
  };
})();
"""

# [ms since the DOM last changed, pending short timers and script requests, a form-like control is on screen]
QUIET = _with_deep(r"""
() => {
  const watch = window.__funnelWatch;
  const formish = deepAll('textarea, input[type=email]').some((e) => e.checkVisibility && e.checkVisibility());
  return watch ? [performance.now() - watch.lastChange, watch.pending.size + watch.requests, formish]
    : [1e9, 0, formish];
}
""")

IS_REDIRECT_INTERSTITIAL = "() => !!document.querySelector('meta[name=\"funnel-redirect\"]')"

PAGE_TEXT = _with_deep("() => { return [location.href, deepText().slice(0, 30000)]; }")


def redirect_interstitial(target_url: str) -> str:
    """A page that navigates to ``target_url`` as a fresh request, so the route guard sees the next hop too."""
    target = json.dumps(target_url).replace("<", "\\u003c")  # no "</script>" break-out
    return (f'<!DOCTYPE html><html><head><meta name="funnel-redirect"><meta charset="utf-8">'
            f'<script>location.replace({target})</script></head><body></body></html>')


SNAPSHOT = _with_deep(SNAPSHOT_BODY)
FILL = _with_deep(FILL_BODY)

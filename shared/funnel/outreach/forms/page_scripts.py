"""JavaScript run inside the page: one snapshot call and one fill call per form.

Collecting everything in a single ``evaluate`` keeps a form run to a handful of
round trips to the browser, which is what makes a warm run take well under a
second. Controls and buttons are tagged with ``data-funnel-fid`` /
``data-funnel-bid`` so later calls can find them again.
"""
import json

SNAPSHOT = r"""
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
  const describeField = (el) => {
    if (!el.dataset.funnelFid) el.dataset.funnelFid = 'f' + seq();
    const type = (el.getAttribute('type') || '').toLowerCase();
    const labels = Array.from(el.labels || []);
    let labelText = clean(labels.map((l) => textOf(l, 150)).join(' '));
    const suffix = inlineText(el, false);
    if (!labelText && (type === 'radio' || type === 'checkbox')) labelText = suffix;
    const ariaIds = (el.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean);
    const aria = clean([el.getAttribute('aria-label') || '']
      .concat(ariaIds.map((id) => textOf(document.getElementById(id), 120))).join(' '));
    const row = rowOf(el);
    return {
      fid: el.dataset.funnelFid, tag: el.tagName.toLowerCase(), type, name: el.getAttribute('name') || '',
      id: el.id || '', placeholder: el.getAttribute('placeholder') || '',
      autocomplete: el.getAttribute('autocomplete') || '', aria_label: aria, labels: labelText,
      title: el.getAttribute('title') || '', pattern: el.getAttribute('pattern') || '',
      maxlength: el.maxLength === undefined ? -1 : el.maxLength,
      required: el.required || el.getAttribute('aria-required') === 'true' || /required/i.test(el.className),
      readonly: !!el.readOnly, disabled: !!el.disabled, visible: isVisible(el),
      label_visible: labels.some(isVisible), container_visible: isVisible(row),
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
  const formIndex = (el) => {
    const form = el.closest('form') || el.form;
    return form ? Array.from(document.forms).indexOf(form) : -1;
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
      (c.getAttribute('type') || '').toLowerCase())).map(describeField),
    buttons: buttons.map(describeButton),
  });
  const forms = Array.from(document.forms).map((form, index) => {
    const controls = Array.from(form.elements).filter((e) => e.matches(CONTROLS));
    const buttons = Array.from(new Set(Array.from(form.elements).filter((e) => e.matches(BUTTONS))
      .concat(Array.from(form.querySelectorAll(BUTTONS)))));
    return describeForm(index, controls, buttons, form);
  });
  // Controls outside any <form> (script-driven forms): one pseudo form with index -1.
  const orphans = Array.from(document.querySelectorAll(CONTROLS)).filter((e) => !e.form && !e.closest('form'));
  if (orphans.some((e) => e.tagName === 'TEXTAREA' || (e.type || '').toLowerCase() === 'email')) {
    const buttons = Array.from(document.querySelectorAll(BUTTONS)).filter((e) => !e.form && !e.closest('form'));
    forms.push(describeForm(-1, orphans, buttons, null));
  }

  const body = document.body;
  return {
    url: location.href, lang: (document.documentElement.lang || '').toLowerCase(), title: document.title,
    content_type: document.contentType, redirecting: !!document.querySelector('meta[name="funnel-redirect"]'),
    text: body ? (body.innerText || '').slice(0, 30000) : '',
    scripts: Array.from(document.scripts).map((s) => s.src).filter(Boolean),
    inline_captcha: Array.from(document.scripts).some((s) => !s.src
      && /grecaptcha|hcaptcha|turnstile\.render|cf-turnstile/i.test(s.textContent || '')),
    iframes: Array.from(document.querySelectorAll('iframe')).map((f) => f.src || ''),
    captcha_nodes: Array.from(document.querySelectorAll(CAPTCHA)).slice(0, 20).map((n) => ({
      what: clean((n.getAttribute('class') || n.getAttribute('name') || n.id || n.tagName).slice(0, 80)),
      form: formIndex(n),
    })),
    links: Array.from(document.querySelectorAll('a[href]')).slice(0, 800).map((a) => ({
      href: a.href,
      text: clean(textOf(a, 80) || a.getAttribute('title') || a.getAttribute('aria-label')
        || (a.querySelector('img') ? a.querySelector('img').getAttribute('alt') : '') || ''),
    })),
    forms,
  };
}
"""

FILL = r"""
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
    const el = document.querySelector(`[data-funnel-fid="${action.fid}"]`);
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

# Controls of one form (index -1: the controls outside any form) that the browser would refuse to submit.
INVALID_CONTROLS = r"""
(formIndex) => {
  const form = formIndex >= 0 ? document.forms[formIndex] : null;
  const controls = form ? Array.from(form.elements)
    : Array.from(document.querySelectorAll('input, select, textarea')).filter((e) => !e.form);
  return controls.filter((e) => e.willValidate && !e.validity.valid).map((e) => ({
    fid: e.dataset.funnelFid || '', name: e.getAttribute('name') || e.id || '', message: e.validationMessage,
  }));
}
"""

IS_REDIRECT_INTERSTITIAL = "() => !!document.querySelector('meta[name=\"funnel-redirect\"]')"

PAGE_TEXT = "() => [location.href, document.body ? document.body.innerText.slice(0, 30000) : '']"


def redirect_interstitial(target_url: str) -> str:
    """A page that navigates to ``target_url`` as a fresh request, so the route guard sees the next hop too."""
    target = json.dumps(target_url).replace("<", "\\u003c")  # no "</script>" break-out
    return (f'<!DOCTYPE html><html><head><meta name="funnel-redirect"><meta charset="utf-8">'
            f'<script>location.replace({target})</script></head><body></body></html>')

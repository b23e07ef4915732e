"""Fixtures for the outreach e2e tests: company sites on their own loopback addresses."""
from __future__ import annotations

import shutil

import pytest

from funnel.settings import reset_settings
from tests.support.contact_sites import ContactSite

SENDER = {"company": "株式会社サンプル商事", "department": "営業部", "position": "部長", "last_name": "山田",
          "first_name": "太郎", "last_name_kana": "ヤマダ", "first_name_kana": "タロウ",
          "email": "taro.yamada@example.co.jp", "phone": "03-1234-5678", "zip": "100-0001", "prefecture": "東京都",
          "address": "千代田区千代田1-1", "url": "https://example.co.jp"}
MESSAGE = "{{company_name}} ご担当者様\n業務効率化サービスのご案内です。{{sender_company}} {{sender_name}}"


@pytest.fixture(scope="module")
def sites(runtime, monkeypatch_module):
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("Chromium is not installed (scripts/install-system-deps.sh chromium)")
    kinds = ["form"] * 7 + ["captcha", "refused", "no_form"]
    started = [ContactSite(f"127.0.0.{20 + index}", kind).start() for index, kind in enumerate(kinds)]
    allowed = sorted({"127.0.0.1", "localhost", *(site.host for site in started)})
    monkeypatch_module.setenv("FUNNEL_SSRF_ALLOW_HOSTS", ",".join(allowed))
    reset_settings()
    yield started
    for site in started:
        site.stop()
    reset_settings()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch

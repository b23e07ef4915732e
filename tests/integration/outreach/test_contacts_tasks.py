"""Outreach input handling through the API: CSV import, templates, do-not-contact, bad tasks."""
from __future__ import annotations

import pytest

from funnel import db
from funnel.settings import reset_settings
from tests.support.outreach import SENDER, finished_import_job, import_csv
from tests.support.tenants import new_tenant, row_count

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def tenant(runtime):
    return new_tenant()


def test_csv_import_accepts_shift_jis_normalises_and_reports_each_rejected_row(api, tenant):
    text = ("会社名,ホームページ,担当者,電話番号,法人番号\n"
            "株式会社アルファ,alpha.example.co.jp,佐藤,03-1111-2222,1234567890123\n"
            "ベータ株式会社,https://www.beta.example.com/about,,,\n"
            "アルファ重複,https://alpha.example.co.jp/contact,,,\n"
            ",https://nameless.example.com,,,\n"
            "ガンマ,ftp://gamma.example.com,,,\n"
            "デルタ,https://delta.example.com,,,12345\n")
    result = import_csv(api, tenant, text.encode("cp932"))
    assert result.status_code == 200, result.text
    body = result.json()
    assert (body["imported"], body["duplicates"], body["rejected"]) == (2, 1, 3)
    assert [(r["row"], r["status"]) for r in body["report"]] == [(4, "duplicate"), (5, "rejected"), (6, "rejected"),
                                                                (7, "rejected")]
    assert "13 digits" in body["report"][-1]["reason"]
    contacts = {c["domain"]: c for c in api.get("/v1/contacts", headers=tenant.headers).json()["items"]}
    assert contacts["alpha.example.co.jp"]["default_url"] == "https://alpha.example.co.jp/"
    assert contacts["alpha.example.co.jp"]["phone"] == "0311112222"
    assert "beta.example.com" in contacts
    again = import_csv(api, tenant, "company_name,url\nAlpha again,https://alpha.example.co.jp\n".encode("utf-8-sig"))
    assert again.json()["imported"] == 0 and again.json()["report"][0]["status"] == "duplicate"


def test_broken_files_are_refused_with_a_clear_message_and_import_nothing(api, tenant):
    before = row_count(tenant, "contacts")
    broken = import_csv(api, tenant, b"company,url\n\x82\xa0\xff\xfe\xfd broken,\xff\xff\n")
    assert broken.status_code == 422 and "neither UTF-8 nor Shift_JIS" in broken.json()["detail"]
    no_url = import_csv(api, tenant, "会社名,電話番号\n株式会社イプシロン,03-0000-0000\n".encode())
    assert no_url.status_code == 422 and "no URL column" in no_url.json()["detail"]
    assert broken.headers["content-type"] == no_url.headers["content-type"] == PROBLEM
    assert row_count(tenant, "contacts") == before


def test_templates_refuse_unknown_variables(api, tenant):
    bad = api.post("/v1/templates", headers=tenant.headers,
                   json={"title": "Intro", "body": "{{company_name}} 様 {{ceo_name}} 様"})
    assert bad.status_code == 422 and "ceo_name" in bad.json()["detail"]
    good = api.post("/v1/templates", headers=tenant.headers,
                    json={"title": "Intro", "body": "{{company_name}} {{contact_person}} 様", "ai_mode": True})
    assert good.status_code == 201 and good.json()["metadata"]["ai_mode"] is True


def test_bad_tasks_create_nothing(api, tenant):
    before = (row_count(tenant, "tasks"), row_count(tenant, "task_targets"))
    cases = [
        {"name": "empty", "sender": SENDER, "message": "hi"},
        {"name": "vars", "sender": SENDER, "message": "{{boss}}", "urls": ["https://a.example.com"]},
        {"name": "private", "sender": SENDER, "message": "hi", "urls": ["http://10.0.0.5/contact"]},
        {"name": "metadata", "sender": SENDER, "message": "hi", "urls": ["http://169.254.169.254/latest"]},
        {"name": "scheme", "sender": SENDER, "message": "hi", "urls": ["javascript:alert(1)"]},
        {"name": "nobody", "sender": {**SENDER, "email": ""}, "message": "hi", "urls": ["https://a.example.com"]},
        # 50,000 targets a task (routes.MAX_TARGETS); one more is refused before anything is looked up
        {"name": "too many", "sender": SENDER, "message": "hi",
         "urls": [f"{index}.jp" for index in range(50_001)]},  # short: the body stays within the API's 1 MiB
    ]
    for body in cases:
        response = api.post("/v1/tasks", headers=tenant.headers, json=body)
        assert response.status_code == 422, (body["name"], response.text)
        assert response.headers["content-type"] == PROBLEM
    assert (row_count(tenant, "tasks"), row_count(tenant, "task_targets")) == before


@pytest.fixture
def resolvable(monkeypatch):
    """The sandbox has no DNS: allow-list the example hosts so the SSRF guard need not resolve them."""
    hosts = ["127.0.0.1", "localhost", "block-co.example.org", "corp.example.org", "blocked.example.com",
             "www.blocked.example.com", "mailblock.example.net", "fine.example.com"]
    monkeypatch.setenv("FUNNEL_SSRF_ALLOW_HOSTS", ",".join(hosts))
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


def test_do_not_contact_matches_domain_phone_company_and_corporate_number(api, tenant, resolvable):
    for kind, value in (("domain", "https://www.blocked.example.com/x"), ("company_name", "株式会社 ブロック"),
                        ("corporate_number", "9876543210123"), ("email", "ceo@mailblock.example.net")):
        assert api.post("/v1/do-not-contact", headers=tenant.headers,
                        json={"kind": kind, "value": value}).status_code == 201
    created = api.post("/v1/contacts", headers=tenant.headers,
                       json={"company_name": "ブロック(株)", "url": "https://block-co.example.org"}).json()
    corp = api.post("/v1/contacts", headers=tenant.headers,
                    json={"company_name": "Corp", "url": "https://corp.example.org",
                          "corporate_number": "9876543210123"}).json()
    mailed = api.post("/v1/contacts", headers=tenant.headers,
                      json={"company_name": "Mail", "url": "https://mailblock.example.net/form",
                            "email": "CEO@mailblock.example.net"}).json()
    task = api.post("/v1/tasks", headers=tenant.headers, json={
        "name": "dnc", "sender": SENDER, "message": "hello {{company_name}}",
        "contact_ids": [created["id"], corp["id"], mailed["id"]],
        "urls": ["https://blocked.example.com/contact", "https://www.blocked.example.com/other",
                 "https://fine.example.com/"]}).json()
    targets = {t["domain"]: t for t in api.get(f"/v1/tasks/{task['id']}/targets", headers=tenant.headers).json()[
        "items"]}
    assert set(targets) == {"block-co.example.org", "corp.example.org", "blocked.example.com",
                            "mailblock.example.net", "fine.example.com"}  # one target per company domain
    assert {d for d, t in targets.items() if t["status"] == "skipped"} == {
        "block-co.example.org", "corp.example.org", "blocked.example.com", "mailblock.example.net"}
    assert targets["fine.example.com"]["status"] == "pending"
    assert targets["fine.example.com"]["message"] == "hello fine.example.com"


def test_a_10000_row_import_runs_in_the_background_with_progress(api, tenant):
    lines = ["会社名,ホームページ"] + [f"会社{i},https://bulk{i}.example.jp/" for i in range(10_000)]
    lines.append("会社X,not a url at all")
    started = import_csv(api, tenant, "\n".join(lines).encode("cp932"))
    assert started.status_code == 200 and started.json()["status"] == "pending", started.text
    job_id = started.json()["import_job_id"]
    job = finished_import_job(api, tenant, job_id, timeout=120)
    assert job["status"] == "completed" and job["progress"] == 100
    assert job["imported"] == 10_000 and job["rejected"] == 1 and job["report"][0]["row"] == 10_002
    with db.tenant_transaction(tenant.tenant_id) as conn:
        assert conn.execute("SELECT count(*) AS n FROM contacts WHERE domain LIKE 'bulk%%'").fetchone()["n"] == 10_000

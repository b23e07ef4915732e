"""What a touch becomes (funnel.community.crossarea), over an in-memory fake of store_crossarea and of the
activities service: a person's e-mail click is an ``email`` account's activity, resolved like every account; a
redelivered touch resolves nothing; a developer without analytics consent gets nothing, not even an account; a
company mailbox's click and a form submission are the organization's at that domain; no organization, a free-mail
domain or no address: nothing."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from funnel.community import crossarea
from funnel.community.touches import EmailClick, FormSubmission

TENANT = uuid.UUID("7d1f3f2e-0000-4000-8000-0000000000aa")
ORG = uuid.UUID("7d1f3f2e-0000-4000-8000-0000000000bb")


class FakeStore:
    def __init__(self):
        self.activities: dict[str, dict] = {}  # by dedup key
        self.orgs: dict[str, list[dict]] = {"acme.co.jp": [{"org_id": ORG, "name": "Acme"}]}
        self.email_owners: dict[str, list[dict]] = {}
        self.resources: dict[tuple[str, str], dict] = {}
        self.links: list[dict] = []

    def activity_by_dedup_key(self, conn, key):
        return self.activities.get(key)

    def organizations_at_domain(self, conn, domain):
        return self.orgs.get(domain, [])

    def developers_of_email(self, conn, value):
        return self.email_owners.get(value, [])

    def shortlinks_by_keys(self, conn, keys):
        return [link for link in self.links if link["key"] in keys]

    def ensure_resource(self, conn, category, external_id, title):
        return self.resources.setdefault((category, external_id), {
            "resource_id": uuid.uuid4(), "category": category, "external_id": external_id, "title": title})

    def insert_org_activity(self, conn, row):
        if row["dedup_key"] in self.activities:
            return None
        activity_id = uuid.uuid4()
        self.activities[row["dedup_key"]] = {**row, "activity_id": activity_id}
        return activity_id


@pytest.fixture
def fake(monkeypatch):
    store = FakeStore()
    ingested: list[dict] = []

    def ingest(conn, principal, items, *, loc):
        [item] = items
        ingested.append(item)
        store.activities[item["dedup_key"]] = item
        return {"items": [{"status": "inserted"}]}

    monkeypatch.setattr(crossarea, "store", store)
    monkeypatch.setattr(crossarea, "activities", SimpleNamespace(ingest=ingest))
    monkeypatch.setattr(crossarea.audit, "record", lambda *args, **kwargs: None)
    monkeypatch.setattr(crossarea, "_default_host", lambda: "funnel.example")
    store.ingested = ingested
    return store


def click(email: str, **fields) -> EmailClick:
    return EmailClick(**{"tenant_id": TENANT, "touch_id": f"click:{uuid.uuid4()}", "occurred_at": datetime.now(UTC),
                         "email": email, "email_campaign_id": uuid.uuid4(), "email_message_id": uuid.uuid4(),
                         **fields})


def form(domain: str, **fields) -> FormSubmission:
    return FormSubmission(**{"tenant_id": TENANT, "touch_id": f"target:{uuid.uuid4()}",
                             "occurred_at": datetime.now(UTC), "domain": domain, "task_id": uuid.uuid4(),
                             "target_id": uuid.uuid4(), **fields})


def test_a_persons_click_is_an_email_accounts_activity_resolved_like_every_account(fake):
    touch = click("Taro.Yamada+news@Acme.co.jp", name="山田 太郎", company="アクメ", url="https://docs.example.com")
    assert crossarea.record_email_click(None, touch) == "inserted"
    [item] = fake.ingested
    assert item["account"] == {"provider": "email", "external_user_id": "taro.yamada@acme.co.jp",
                               "email": "taro.yamada+news@acme.co.jp", "display_name": "山田 太郎", "org": "アクメ"}
    assert (item["action"], item["source"], item["dedup_key"]) == ("click", "email", f"email:click:{touch.touch_id}")
    resource = fake.resources[("email_campaign", str(touch.email_campaign_id))]
    assert item["resource_id"] == resource["resource_id"]
    assert item["metadata"]["email_campaign_id"] == str(touch.email_campaign_id)
    assert crossarea.record_email_click(None, touch) == "duplicate" and len(fake.ingested) == 1


def test_no_activity_and_no_account_for_a_developer_without_consent(fake):
    fake.email_owners["hanako@acme.co.jp"] = [{"developer_id": uuid.uuid4(), "consent_analytics": False}]
    assert crossarea.record_email_click(None, click("Hanako@acme.co.jp")) == "skipped_consent"
    assert fake.ingested == [] and fake.resources == {}


def test_a_company_mailboxs_click_is_the_organizations(fake):
    touch = click("info@www.acme.co.jp")
    assert crossarea.record_email_click(None, touch) == "inserted"
    [row] = fake.activities.values()
    assert (row["org_id"], row["action"], row["source"]) == (ORG, "click", "email") and fake.ingested == []
    assert crossarea.record_email_click(None, click("sales@nobody.example")) == "no_organization"
    assert crossarea.record_email_click(None, click("info@gmail.com")) == "no_organization"
    assert crossarea.record_email_click(None, click("not an address")) == "not_an_address"


def test_a_click_on_a_shortlink_names_it_without_crediting_it_twice(fake):
    link_id = uuid.uuid4()
    fake.links.append({"shortlink_id": link_id, "key": "launch", "host": "", "campaign_id": uuid.uuid4()})
    crossarea.record_email_click(None, click("jiro@acme.co.jp", url="https://funnel.example/s/launch"))
    [item] = fake.ingested
    assert item["metadata"]["via_shortlink_id"] == str(link_id) and "shortlink_id" not in item["metadata"]


def test_a_form_submission_is_an_activity_of_the_organization_at_the_companys_domain(fake):
    fake.links.append({"shortlink_id": uuid.uuid4(), "key": "promo", "host": "go.acme.jp", "campaign_id": None})
    touch = form("WWW.Acme.co.jp", urls=["https://go.acme.jp/s/promo", "https://acme.co.jp/"])
    assert crossarea.record_form_submission(None, touch) == "inserted"
    [row] = fake.activities.values()
    assert (row["org_id"], row["action"], row["source"]) == (ORG, "form_submission", "outreach")
    assert row["resource_id"] == fake.resources[("outreach_task", str(touch.task_id))]["resource_id"]
    assert row["metadata"]["shortlink_keys"] == ["promo"] and row["metadata"]["domain"] == "acme.co.jp"
    assert crossarea.record_form_submission(None, touch) == "duplicate"
    assert crossarea.record_form_submission(None, form("elsewhere.example")) == "no_organization"
    assert crossarea.record_form_submission(None, form("gmail.com")) == "no_organization"

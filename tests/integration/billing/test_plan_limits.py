"""The plan's limits at the point of use, against real PostgreSQL (pooled tenants, so under row-level security):
concurrent consumers racing for the last unit, each consuming path refusing with the 402 problem and writing
nothing, the cron gate, ``GET /v1/usage``, the owners' 80 % / 100 % notifications and tenant isolation."""
from __future__ import annotations

import threading
import time

import pytest

from funnel import db
from funnel.billing import limits, plans, usage
from funnel.community import shortlinks
from funnel.content import schedules
from funnel.email import campaigns, delivery
from funnel.platform import auth, suppression, users
from tests.integration.billing.conftest import counter
from tests.support.billing import set_subscription
from tests.support.tenants import PASSWORD, new_pooled_tenant, row_count

PROBLEM = "application/problem+json"
FREE = plans.PLANS["free"]


def _limit(metric: str) -> int:
    value = FREE.limit(metric)
    assert value is not None
    return int(value)


# ---------------------------------------------------------------- the lock
def test_concurrent_consumers_cannot_take_the_last_unit_twice(tenant, used_up):
    used_up(tenant, "articles", leave=1)
    racers, start = 6, threading.Barrier(6)
    outcomes: list[str] = []

    def race() -> None:
        start.wait()
        try:
            with db.tenant_transaction(tenant.tenant_id) as conn:
                limits.use(conn, tenant.tenant_id, "articles")
                time.sleep(0.2)  # hold the row: the others wait on its lock and re-check the limit after it
            outcomes.append("taken")
        except limits.PlanLimitReached:
            outcomes.append("refused")

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["refused"] * (racers - 1) + ["taken"]
    assert counter(tenant, "articles") == _limit("articles")


def test_a_refusal_names_the_limit_its_value_and_when_it_resets(tenant, used_up):
    used_up(tenant, "articles", leave=2)
    with pytest.raises(limits.PlanLimitReached) as refused:
        with db.tenant_transaction(tenant.tenant_id) as conn:
            limits.use(conn, tenant.tenant_id, "articles", 3)
    assert refused.value.status == 402
    assert refused.value.extra == {"limit": "articles", "limit_value": _limit("articles"),
                                   "used": _limit("articles") - 2, "plan": "free",
                                   "resets_at": usage.resets_at(usage.period_start()).isoformat()}
    assert counter(tenant, "articles") == _limit("articles") - 2  # nothing taken


# ---------------------------------------------------------------- content: the API and the cron gate
def _product_with_schedule(tenant) -> tuple[str, str]:
    with db.tenant_transaction(tenant.tenant_id) as conn:
        site = conn.execute("INSERT INTO sites (slug, wp_admin_url, wp_username, wp_api_token, status) VALUES "
                            "('blog', 'http://127.0.0.1:9/wp-admin', 'editor', 'token', 'active') RETURNING id"
                            ).fetchone()["id"]
        product = conn.execute("INSERT INTO products (site_id, url, image_style) VALUES (%s, 'http://127.0.0.1:9/', "
                               "'none') RETURNING id", (site,)).fetchone()["id"]
        schedule = conn.execute("INSERT INTO schedules (site_id, product_id, cron_expression, timezone, "
                                "articles_per_run) VALUES (%s, %s, '0 9 * * *', 'UTC', 2) RETURNING id",
                                (site, product)).fetchone()["id"]
    return str(product), str(schedule)


def test_generating_past_the_limit_is_a_402_problem_and_creates_no_run(client, tenant, used_up):
    product, _ = _product_with_schedule(tenant)
    used_up(tenant, "articles", leave=1)
    answer = client.post(f"/v1/products/{product}/generate", headers=tenant.headers,
                         json={"articles_count": 2, "publish_mode": "draft"})
    assert answer.status_code == 402 and answer.headers["content-type"].startswith(PROBLEM)
    problem = answer.json()
    assert problem["type"].endswith("plan-limit-reached")
    assert (problem["limit"], problem["limit_value"], problem["used"]) == ("articles", _limit("articles"),
                                                                           _limit("articles") - 1)
    assert problem["resets_at"] == usage.resets_at(usage.period_start()).isoformat()
    assert row_count(tenant, "runs") == 0 and counter(tenant, "articles") == _limit("articles") - 1


@pytest.mark.parametrize("why", ["canceled", "over the limit"])
def test_a_cron_firing_of_a_canceled_or_over_limit_tenant_starts_nothing_and_records_why(tenant, used_up, why):
    _, schedule = _product_with_schedule(tenant)
    if why == "canceled":
        set_subscription(tenant, status="canceled")
    else:
        used_up(tenant, "articles", leave=1)  # the schedule wants 2
    before = counter(tenant, "articles")
    result = schedules.fire(tenant.tenant_id, schedule, "2026-11-23T09:00:00Z")
    assert result["status"] == "failed"
    with db.tenant_transaction(tenant.tenant_id) as conn:
        job = conn.execute("SELECT status, run_id, error_message FROM schedule_jobs WHERE schedule_id = %s",
                           (schedule,)).fetchone()
    assert job["status"] == "failed" and job["run_id"] is None
    assert ("canceled" if why == "canceled" else "limit of 30 articles") in job["error_message"]
    assert row_count(tenant, "runs") == 0 and counter(tenant, "articles") == before


# ---------------------------------------------------------------- e-mail: each message before it is sent
def _campaign_message(tenant, email: str = "reader@example.com") -> tuple[str, str]:
    campaign = campaigns.create_campaign(tenant.owner, name="Launch", subject="Hello", body="Hi there",
                                         from_name="Acme", sender_identity="acme", reminder_strategy=None,
                                         recipients=[{"email": email}])
    with db.tenant_transaction(tenant.tenant_id) as conn:
        message = conn.execute("SELECT id FROM email_messages WHERE campaign_id = %s", (campaign["id"],)).fetchone()
    return str(campaign["id"]), str(message["id"])


def test_a_message_past_the_e_mail_limit_is_refused_for_good_and_not_sent(client, tenant, used_up):
    campaign, message = _campaign_message(tenant)
    used_up(tenant, "emails")
    assert delivery.deliver(tenant.tenant_id, message) == "failed"
    with db.tenant_transaction(tenant.tenant_id) as conn:
        row = conn.execute("SELECT status, error, provider_message_id FROM email_messages WHERE id = %s",
                           (message,)).fetchone()
    assert row["status"] == "failed" and "limit of 10000 e-mails" in row["error"]
    assert row["provider_message_id"] is None and counter(tenant, "emails") == _limit("emails")
    answer = client.post(f"/v1/email-campaigns/{_campaign_message(tenant, 'other@example.com')[0]}/send",
                         headers=tenant.headers)
    assert answer.status_code == 402 and answer.json()["limit"] == "emails"


def test_a_message_not_sent_after_all_gives_its_e_mail_back(tenant):
    _, message = _campaign_message(tenant, "gone@example.com")
    with db.tenant_transaction(tenant.tenant_id) as conn:
        suppression.suppress(conn, "email", "gone@example.com", "manual", "test")
    assert delivery.deliver(tenant.tenant_id, message) == "suppressed"
    assert counter(tenant, "emails") == 0


# ---------------------------------------------------------------- shortlinks, seats, LLM spend
def test_a_click_past_the_limit_is_redirected_but_not_tracked(tenant, used_up):
    with db.tenant_transaction(tenant.tenant_id) as conn:
        link = shortlinks.create(conn, tenant.owner, {"target_url": "https://example.com/docs"})
    used_up(tenant, "shortlink_clicks", leave=1)
    visit = shortlinks.Visit(host="127.0.0.1", key=link["key"], headers={"user-agent": "Mozilla/5.0 Firefox/130.0"})
    assert shortlinks.follow(visit).recorded == "inserted"
    over = shortlinks.follow(visit)
    assert (over.status, over.location, over.recorded) == (302, "https://example.com/docs", "over_plan_limit")
    assert row_count(tenant, "activities") == 1 and counter(tenant, "shortlink_clicks") == _limit("shortlink_clicks")


def test_a_user_past_the_seats_is_a_402_and_is_not_created(client, tenant):
    for n in range(_limit("seats") - 1):  # the owner holds the first seat
        users.create_user(tenant.tenant_id, email=f"user{n}-{tenant.slug}@example.com", password=None,
                          role="member", display_name=None, actor=tenant.owner)
    answer = client.post("/v1/users", headers=tenant.headers, json={"email": f"one-more-{tenant.slug}@example.com",
                                                                    "role": "member"})
    assert answer.status_code == 402, answer.text
    assert (answer.json()["limit"], answer.json()["resets_at"]) == ("seats", None)
    assert row_count(tenant, "users") == _limit("seats")
    with db.control_transaction() as conn:
        assert conn.execute("SELECT count(*) AS n FROM login_directory WHERE email = %s",
                            (f"one-more-{tenant.slug}@example.com",)).fetchone()["n"] == 0


def test_llm_calls_stop_once_the_month_s_spend_reaches_the_cap(tenant):
    cap = float(FREE.limit("llm_spend_usd") or 0)
    limits.record_llm_spend(tenant.tenant_id, cap - 0.01)
    limits.check_llm_spend(tenant.tenant_id)  # under the cap: the next call may go
    limits.record_llm_spend(tenant.tenant_id, 0.02)  # that call's cost takes it past
    with pytest.raises(limits.PlanLimitReached, match="LLM spend"):
        limits.check_llm_spend(tenant.tenant_id)
    assert counter(tenant, "llm_spend_usd") == pytest.approx(cap + 0.01)


# ---------------------------------------------------------------- usage, notifications, isolation
def _billing_notifications(tenant) -> list[dict]:
    with db.tenant_transaction(tenant.tenant_id) as conn:
        return conn.execute("SELECT title, recipient_id FROM notifications WHERE notification_category = 'billing' "
                            "AND delivery_method = 'IN_APP' ORDER BY created_at").fetchall()


def test_owners_are_told_at_80_and_100_percent_once_a_month(tenant):
    def take(n: int) -> None:
        with db.tenant_transaction(tenant.tenant_id) as conn:
            limits.use(conn, tenant.tenant_id, "articles", n)

    take(23)
    assert _billing_notifications(tenant) == []  # 23 of 30: under 80 %
    take(1)
    take(1)
    [eighty] = _billing_notifications(tenant)
    assert "80 %" in eighty["title"] and str(eighty["recipient_id"]) == tenant.owner_id
    take(5)
    take(0)
    titles = [n["title"] for n in _billing_notifications(tenant)]
    assert len(titles) == 2 and "limit is reached" in titles[1]


def test_usage_shows_each_counter_its_limit_and_reset_and_another_tenant_s_use_never_counts(client, tenant):
    neighbour = new_pooled_tenant()  # the same pooled database: only RLS keeps them apart
    with db.tenant_transaction(neighbour.tenant_id) as conn:
        limits.use(conn, neighbour.tenant_id, "articles", 7)
    with db.tenant_transaction(tenant.tenant_id) as conn:
        limits.use(conn, tenant.tenant_id, "articles", 3)
    set_subscription(tenant, plan="funnel_starter_monthly")  # a price lookup key names its plan
    viewer = f"viewer-{tenant.slug}@example.com"
    users.create_user(tenant.tenant_id, email=viewer, password=PASSWORD, role="viewer", display_name=None,
                      actor=tenant.owner)
    signed_in = auth.login(viewer, PASSWORD, None, "127.0.0.1")
    answer = client.get("/v1/usage", headers={"Authorization": f"Bearer {signed_in['access_token']}"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    by_metric = {c["metric"]: c for c in body["counters"]}
    assert body["plan"] == "starter" and set(by_metric) == set(plans.METRICS)
    assert by_metric["articles"] == {"metric": "articles", "used": 3, "limit": 200, "percent": 1.5,
                                     "resets_at": by_metric["articles"]["resets_at"]}
    assert by_metric["articles"]["resets_at"].startswith(usage.resets_at(usage.period_start()).date().isoformat())
    assert by_metric["seats"]["used"] == 2 and by_metric["seats"]["resets_at"] is None
    assert by_metric["emails"]["used"] == 0
    assert counter(neighbour, "articles") == 7

"""The incremental stats rollup against real PostgreSQL (a pooled tenant): on random data, after each of several
rounds of changes (activities inserted, some late with an old occurred_at, deleted and edited; merges, unmerges
and an erasure moving or stripping activities; attribution recomputations; budget entries; a campaign renamed and
a resource moved to another campaign; a developer without activities merged into a busy one; activities of
organizations (no developer), developers joining, leaving and changing organization; the funnel map changed), the
incrementally rolled-up ``developer_stats`` (with each developer's first touch and first adoption) and
``campaign_stats`` equal a from-scratch recount; a change committed while a rollup runs is counted by the next
one."""
from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from funnel import db
from funnel.community import campaigns, developers, identity
from funnel.community import store_stats as store
from funnel.community.identity import AccountIn
from tests.support.community_stats import rollup

ACTIONS = ("click", "view", "star", "post", "attend", "signup", "api_call", "fork", "comment")
SOURCES = ("test", "email", "shortlink", "github")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _compare(tenant_conn) -> None:
    with tenant_conn() as conn:
        assert store.stored_developer_stats(conn) == store.recomputed_developer_stats(conn)
        assert store.stored_campaign_stats(conn) == store.recomputed_campaign_stats(conn)


class World:
    """The module tenant's random community: developers, campaigns (one matched by utm_campaign, one by name, one
    through a resource, one through a shortlink), and the activities written so far."""

    def __init__(self, community_tenant, tenant_conn, resolve, seed: int) -> None:
        self.rng = random.Random(seed)
        self.tenant = community_tenant
        self.tenant_conn = tenant_conn
        tag = uuid.uuid4().hex[:6]
        self.developers = [r.developer_id for r in resolve(*(
            AccountIn(provider="github", external_user_id=f"{tag}-{n}", handle=f"roll{tag}{n}") for n in range(24)))]
        # developers that never get activities: merging one into a busy developer moves nothing, yet identity
        # deletes both developers' stats rows
        self.idle = [r.developer_id for r in resolve(*(
            AccountIn(provider="github", external_user_id=f"{tag}-idle-{n}", handle=f"idle{tag}{n}")
            for n in range(2)))]
        # a member of the first organization who never acts: their first touch is always their organization's
        [self.quiet_member] = [r.developer_id for r in resolve(
            AccountIn(provider="github", external_user_id=f"{tag}-quiet", handle=f"quiet{tag}"))]
        self.merges: list[uuid.UUID] = []
        with tenant_conn() as conn:
            self.organizations = [conn.execute(
                "INSERT INTO organizations (name, domain_primary) VALUES (%s, %s) RETURNING org_id",
                (f"{tag} org {n}", f"o{n}-{tag}.example")).fetchone()["org_id"] for n in range(3)]
            conn.execute("UPDATE developers SET org_id = %s WHERE developer_id = %s",
                         (self.organizations[0], self.quiet_member))
            # a third of the developers work for one of the first two organizations (the third has none yet)
            for n, developer_id in enumerate(self.developers[:8]):
                conn.execute("UPDATE developers SET org_id = %s WHERE developer_id = %s",
                             (self.organizations[n % 2], developer_id))
            principal = community_tenant.owner
            self.campaigns = [campaigns.create_campaign(conn, principal, {
                "name": f"{tag} c{n}", "currency": "JPY", "attributes": {"utm_campaign": f"u{tag}{n}"} if n == 0
                else {}})["campaign_id"] for n in range(4)]
            self.names = [f"u{tag}0", f"{tag} c1"]
            self.resources = [campaigns.create_resource(conn, principal, {
                "category": "blog", "title": f"r{n}", "campaign_id": self.campaigns[2] if n == 0 else None,
                "attributes": {}})["resource_id"] for n in range(2)]
            self.shortlink = conn.execute(
                "INSERT INTO shortlinks (key, target_url, campaign_id) VALUES (%s, 'https://example.com/', %s) "
                "RETURNING shortlink_id", (f"r{tag}", self.campaigns[3])).fetchone()["shortlink_id"]

    def live_developers(self) -> list[uuid.UUID]:
        with self.tenant_conn() as conn:
            rows = conn.execute("SELECT developer_id FROM developers WHERE developer_id = ANY(%s) "
                                "AND merged_into IS NULL AND erased_at IS NULL", (self.developers,)).fetchall()
        return sorted((r["developer_id"] for r in rows), key=str)

    def insert_activities(self, n: int, *, late: bool) -> None:
        rng = self.rng
        live = self.live_developers()
        rows = []
        for _ in range(n):
            metadata: dict[str, Any] | None = None
            link = rng.random()
            if link < 0.15:
                metadata = {"utm_campaign": rng.choice(self.names)}
            elif link < 0.25:
                metadata = {"shortlink_id": str(self.shortlink)}
            resource = rng.choice(self.resources) if rng.random() < 0.2 else None
            at = T0 + timedelta(days=rng.uniform(0, 60)) if rng.random() < 0.95 else T0  # ties: by activity id
            if late:  # arrives now, happened long ago
                at = T0 - timedelta(days=rng.uniform(100, 400))
            developer = rng.choice(live) if rng.random() < 0.85 else None
            rows.append((developer, None if developer else f"anon-{rng.randrange(10)}", resource,
                         rng.choice(ACTIONS), at, rng.choice(SOURCES), Jsonb(metadata) if metadata else None,
                         f"roll:{uuid.uuid4()}"))
        with self.tenant_conn() as conn, conn.cursor() as cur:
            cur.executemany("INSERT INTO activities (developer_id, anon_id, resource_id, action, occurred_at, source, "
                            "metadata, dedup_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)

    def insert_org_activities(self, n: int) -> None:
        """Activities of organizations (an outreach form submitted to their company): no developer. The first
        organization (the quiet member's) always gets one."""
        rng = self.rng
        rows = [(self.organizations[0] if i == 0 else rng.choice(self.organizations),
                 T0 + timedelta(days=rng.uniform(-30, 60)), f"roll:{uuid.uuid4()}") for i in range(n)]
        with self.tenant_conn() as conn, conn.cursor() as cur:
            cur.executemany("INSERT INTO activities (org_id, action, occurred_at, source, dedup_key) "
                            "VALUES (%s, 'form_submission', %s, 'outreach', %s)", rows)

    def move_organizations(self) -> None:
        """A developer moves to another organization, one leaves its own, one joins the third (with activities)."""
        live = self.live_developers()
        mover, leaver, joiner = self.rng.sample(live, 3)
        with self.tenant_conn() as conn:
            conn.execute("UPDATE developers SET org_id = CASE WHEN org_id = %s THEN %s ELSE %s END "
                         "WHERE developer_id = %s", (self.organizations[0], self.organizations[1],
                                                     self.organizations[0], mover))
            conn.execute("UPDATE developers SET org_id = NULL WHERE developer_id = %s", (leaver,))
            conn.execute("UPDATE developers SET org_id = %s WHERE developer_id = %s", (self.organizations[2], joiner))

    def remap(self) -> None:
        """The tenant's own funnel map: 'view' becomes an adoption action, 'api_call' no longer is."""
        with self.tenant_conn() as conn:
            conn.execute("INSERT INTO activity_funnel_map (action, stage_key) SELECT action, stage_key "
                         "FROM activity_funnel_defaults WHERE action NOT IN ('view', 'api_call')")
            conn.execute("INSERT INTO activity_funnel_map (action, stage_key) VALUES ('view', 'adoption'), "
                         "('api_call', 'advocacy')")

    def delete_and_edit(self) -> None:
        with self.tenant_conn() as conn:
            conn.execute("DELETE FROM activities WHERE activity_id IN (SELECT activity_id FROM activities "
                         "ORDER BY md5(activity_id::text || %s) LIMIT 15)", (str(self.rng.random()),))
            conn.execute("UPDATE activities SET action = 'star', occurred_at = occurred_at + interval '3 days' "
                         "WHERE activity_id IN (SELECT activity_id FROM activities "
                         "ORDER BY md5(activity_id::text || %s) LIMIT 10)", (str(self.rng.random()),))
            conn.execute("UPDATE activities SET resource_id = %s, metadata = NULL "
                         "WHERE activity_id IN (SELECT activity_id FROM activities "
                         "ORDER BY md5(activity_id::text || %s) LIMIT 10)",
                         (self.resources[0], str(self.rng.random())))

    def merge(self) -> None:
        into, from_ = self.rng.sample(self.live_developers(), 2)
        with self.tenant_conn() as conn:
            log = identity.merge(conn, into, from_, reason="test", evidence=[], merged_by=None)
        self.merges.append(log["merge_id"])

    def merge_idle(self) -> None:
        with self.tenant_conn() as conn:
            identity.merge(conn, self.rng.choice(self.live_developers()), self.idle.pop(), reason="test", evidence=[],
                           merged_by=None)

    def unmerge(self) -> None:
        with self.tenant_conn() as conn:
            identity.unmerge(conn, self.merges.pop(), by=None)

    def erase(self) -> None:
        with self.tenant_conn() as conn:
            developers.erase(conn, self.tenant.owner, self.rng.choice(self.live_developers()))

    def attribute(self, model: str) -> None:
        with self.tenant_conn() as conn:
            campaigns.recompute(conn, self.tenant.owner, {
                "from_": T0 - timedelta(days=400), "to": T0 - timedelta(days=400) + timedelta(days=366),
                "model": model, "lookback_days": 60, "conversion_actions": ["signup", "api_call"]})
            campaigns.recompute(conn, self.tenant.owner, {
                "from_": T0 - timedelta(days=34), "to": T0 + timedelta(days=100), "model": model,
                "lookback_days": 30, "conversion_actions": ["signup"]})

    def budget(self) -> None:
        with self.tenant_conn() as conn:
            for campaign_id in self.rng.sample(self.campaigns, 2):
                campaigns.create_budget(conn, self.tenant.owner, campaign_id, {
                    "category": "ad", "amount": Decimal(self.rng.randrange(1000, 50000)), "currency": "JPY",
                    "spent_at": T0.date(), "source": "api", "meta": {}})

    def relink(self) -> None:
        """A campaign renamed (activities tagged with the old name no longer touch it) and a resource moved."""
        tag = uuid.uuid4().hex[:4]
        with self.tenant_conn() as conn:
            campaigns.update_campaign(conn, self.tenant.owner, self.campaigns[1], {"name": f"renamed {tag}"})
            campaigns.update_resource(conn, self.tenant.owner, self.resources[1], {"campaign_id": self.campaigns[0]})


@pytest.fixture(scope="module")
def world(community_tenant, tenant_conn, resolve) -> World:
    return World(community_tenant, tenant_conn, resolve, seed=20261201)


def test_incremental_rollup_equals_a_full_recount_after_every_round(world, tenant_conn, community_tenant):
    rollup(community_tenant.tenant_id)
    with tenant_conn() as conn:  # a tenant's first rollup recounts everything
        state = store.rollup_state(conn)
        assert state is not None and state["full_at"] is not None
    _compare(tenant_conn)
    rounds = [
        lambda: world.insert_activities(300, late=False),
        lambda: (world.insert_activities(120, late=True), world.attribute("last_touch")),
        lambda: (world.merge(), world.merge(), world.merge_idle(), world.insert_activities(50, late=False)),
        lambda: (world.delete_and_edit(), world.budget(), world.attribute("linear")),
        lambda: (world.unmerge(), world.erase(), world.insert_activities(80, late=True)),
        lambda: (world.relink(), world.insert_activities(60, late=False)),
        lambda: (world.attribute("time_decay"), world.merge(), world.merge_idle(), world.delete_and_edit()),
        lambda: world.insert_org_activities(6),
        lambda: (world.move_organizations(), world.insert_activities(40, late=True)),
        lambda: (world.insert_org_activities(3), world.delete_and_edit(), world.remap()),
    ]
    outcomes = []
    for change in rounds:
        change()
        outcome = rollup(community_tenant.tenant_id)
        assert not outcome["was_full"]
        outcomes.append(outcome)
        _compare(tenant_conn)
    assert all(o["changes"] > 0 for o in outcomes)
    assert [o["relinked"] for o in outcomes] == [False, False, False, False, False, True, False, False, False, False]
    with tenant_conn() as conn:
        assert store.pending_changes(conn) == 0
        assert len(store.stored_developer_stats(conn)) > 10
        touched = [r for r in store.stored_campaign_stats(conn) if r["actions_total"] > 0]
        # c1 was renamed: the activities tagged with its old name touch it no more
        assert {r["campaign_id"] for r in touched} == {world.campaigns[n] for n in (0, 2, 3)}
        assert any(r["conversions"] > 0 for r in touched)
        developer_rows = store.stored_developer_stats(conn)
        quiet = next(r for r in developer_rows if r["developer_id"] == world.quiet_member)
        assert quiet["first_touch_from_org"] and quiet["total_actions"] == 0  # an organization's touch, and only that
        assert any(r["first_touch_from_org"] is False for r in developer_rows)
        assert any(r["first_adopted_at"] is not None for r in developer_rows)
    quiet = rollup(community_tenant.tenant_id)
    assert (quiet["changes"], quiet["developers_written"], quiet["campaigns_written"]) == (
        0, 0, 0)


def test_a_change_committed_during_a_rollup_waits_for_the_next(world, tenant_conn, community_tenant):
    """The rollup consumes only the changes its snapshot sees: an insert that commits after the rollup read the
    log but before it committed is left for the next one (counted once)."""
    rollup(community_tenant.tenant_id)
    developer = world.live_developers()[0]
    with db.tenant_transaction(community_tenant.tenant_id) as rollup_conn:
        assert store.try_lock_rollup(rollup_conn)
        store.rollup_incremental(rollup_conn)  # the rollup's statement has run; its transaction is still open
        with tenant_conn() as conn:  # meanwhile another transaction adds an activity and commits
            conn.execute("INSERT INTO activities (developer_id, action, occurred_at, source, dedup_key) "
                         "VALUES (%s, 'star', now(), 'test', %s)", (developer, f"roll:{uuid.uuid4()}"))
    with tenant_conn() as conn:
        assert store.pending_changes(conn) == 1
    outcome = rollup(community_tenant.tenant_id)
    assert outcome["changes"] == 1
    _compare(tenant_conn)


def test_a_full_rollup_gives_the_same_rows(world, tenant_conn, community_tenant):
    with tenant_conn() as conn:
        before = (store.stored_developer_stats(conn), store.stored_campaign_stats(conn))
    outcome = rollup(community_tenant.tenant_id, full=True)
    assert outcome["was_full"] and outcome["developers_written"] == 0
    with tenant_conn() as conn:
        assert (store.stored_developer_stats(conn), store.stored_campaign_stats(conn)) == before

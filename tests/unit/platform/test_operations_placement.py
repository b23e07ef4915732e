"""``tenants.place`` over an in-memory fake of ``store_tenants``' placement queries: a silo tenant goes to the open
server with the most room, a pooled one into the named pool (registered when new), or the oldest pool below its
limit, or a new pool; draining and full places are never chosen, and no room anywhere is a 503. No database."""
from __future__ import annotations

import pytest

from funnel.platform import tenants
from funnel.platform.errors import Conflict, ServiceUnavailable


class FakePlacement:
    def __init__(self) -> None:
        self.servers = {"primary": {"url": "postgresql://a:5432/", "capacity": 10, "databases": 9, "state": "open"},
                        "second": {"url": "postgresql://b:5432/", "capacity": 10, "databases": 2, "state": "open"}}
        self.pools: dict[str, dict] = {}  # in creation order

    def open_server_with_most_room(self, conn):
        candidates = [(s["capacity"] - s["databases"], sid) for sid, s in self.servers.items()
                      if s["state"] == "open" and s["databases"] < s["capacity"]]
        if not candidates:
            return None
        _, sid = max(candidates, key=lambda c: (c[0], [-ord(ch) for ch in c[1]]))
        return {"id": sid, **self.servers[sid]}

    def _pool_row(self, name):
        pool = self.pools[name]
        server = self.servers[pool["server_id"]]
        return {"database_name": name, **pool, "server_url": server["url"], "server_state": server["state"]}

    def pool(self, conn, name):
        return self._pool_row(name) if name in self.pools else None

    def pool_with_room(self, conn):
        for name in self.pools:
            row = self._pool_row(name)
            if row["server_state"] != "draining" and row["tenants"] < row["max_tenants"]:
                return row
        return None

    def insert_pool(self, conn, name, server_id, max_tenants):
        self.pools[name] = {"server_id": server_id, "max_tenants": max_tenants, "tenants": 0}
        self.servers[server_id]["databases"] += 1


@pytest.fixture
def store(monkeypatch):
    fake = FakePlacement()
    monkeypatch.setattr(tenants, "store_tenants", fake)
    return fake


def test_a_silo_tenant_goes_to_the_open_server_with_the_most_room(store):
    placement = tenants.place(None, "acme", None, pooled=False)
    assert (placement.server_id, placement.server_url, placement.dbname) == ("second", "postgresql://b:5432/",
                                                                             "funnel_t_acme")
    store.servers["second"]["state"] = "draining"
    assert tenants.place(None, "acme", None, pooled=False).server_id == "primary"


def test_a_full_server_is_never_chosen_and_no_room_anywhere_is_a_503(store):
    store.servers["second"]["databases"] = 10
    assert tenants.place(None, "acme", None, pooled=False).server_id == "primary"
    store.servers["primary"]["databases"] = 10
    with pytest.raises(ServiceUnavailable, match="no database server has room"):
        tenants.place(None, "acme", None, pooled=False)


def test_a_new_pool_name_is_registered_on_the_server_with_the_most_room(store):
    placement = tenants.place(None, "acme", "team_pool", pooled=True)
    assert (placement.server_id, placement.dbname, placement.new_pool) == ("second", "team_pool", True)
    assert store.pools["team_pool"]["max_tenants"] == tenants.POOL_MAX_TENANTS
    assert store.servers["second"]["databases"] == 3  # a pooled database counts once on its server


def test_a_named_pool_at_its_limit_or_on_a_draining_server_is_refused(store):
    store.insert_pool(None, "team_pool", "primary", 2)
    assert tenants.place(None, "acme", "team_pool", pooled=True).server_id == "primary"
    store.pools["team_pool"]["tenants"] = 2
    with pytest.raises(Conflict, match="full"):
        tenants.place(None, "acme", "team_pool", pooled=True)
    store.pools["team_pool"]["tenants"] = 0
    store.servers["primary"]["state"] = "draining"
    with pytest.raises(Conflict, match="draining"):
        tenants.place(None, "acme", "team_pool", pooled=True)


def test_a_pooled_tenant_fills_the_oldest_pool_below_its_limit_then_gets_a_new_pool(store):
    store.insert_pool(None, "pool_a", "primary", 1)
    store.insert_pool(None, "pool_b", "second", 5)
    store.pools["pool_a"]["tenants"] = 1  # full
    placement = tenants.place(None, "acme", None, pooled=True)
    assert (placement.dbname, placement.server_id, placement.new_pool) == ("pool_b", "second", False)
    store.pools["pool_b"]["tenants"] = 5
    placement = tenants.place(None, "acme", None, pooled=True)
    assert placement.new_pool and placement.dbname.startswith("funnel_pool_") and placement.dbname in store.pools
    assert tenants.DBNAME_RE.match(placement.dbname)

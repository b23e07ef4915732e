"""Tenant placement across two PostgreSQL servers: the session's cluster (``primary``, where the control database
is) and a second cluster this module starts (funnel_dev.postgres, as tests/conftest.py starts the first) and
stops at its end. Provisioning places a silo tenant on the open server with the most room and a pooled one in a
pool below its limit; draining and full servers take nothing; `funnel tenants move` copies a tenant's database
to the other server while its writes are refused, verifies it, switches the directory and drops the old one."""
from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest

from funnel import cli, db
from funnel.platform import migrations, operations, operations_move, store_tenants, tenants
from funnel.platform.errors import Conflict
from tests.support.cli import printed_json
from tests.support.tenants import new_tenant

pytestmark = pytest.mark.usefixtures("runtime")


@pytest.fixture(scope="module")
def second(runtime):
    """A second PostgreSQL cluster registered as an open server with far more room than ``primary``."""
    from funnel_dev.ports import free_port
    from funnel_dev.postgres import LocalPostgres

    base = Path(tempfile.mkdtemp(prefix="funnel-test-second-server-"))  # not under /tmp/pytest-of-*: conftest says why
    cluster = LocalPostgres(base / "pg", free_port(), tuned_for_tests=True).start()
    server = SimpleNamespace(id=f"second-{uuid.uuid4().hex[:6]}", url=f"postgresql://127.0.0.1:{cluster.port}/",
                             cluster=cluster)
    try:
        added = operations.run({"action": "add_server", "id": server.id, "url": server.url, "capacity": 100_000})
        assert added.ok, added.error
        yield server
    finally:
        # Nothing is placed there any more and no tenant points at a server that is gone (later modules migrate
        # every tenant); the pools of its databases go before the cluster does.
        with db.control_admin_connect() as conn:
            store_tenants.update_server(conn, server.id, state="draining")
            for row in store_tenants.list_tenants(conn):
                if row["server_id"] == server.id:
                    store_tenants.mark_deleted(conn, row["id"])
        tenants.directory.forget()
        db.close_pools()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def _set(server_id: str, **change) -> None:
    report = operations.run({"action": "set_server", "id": server_id, **change})
    assert report.ok, report.error


def _databases_on(url: str) -> set[str]:
    with migrations.server_admin_connect(url) as conn:
        return {row["datname"] for row in conn.execute("SELECT datname FROM pg_database")}


def _server_of(tenant_id: str) -> str:
    with db.control_admin_connect() as conn:
        return conn.execute("SELECT server_id FROM tenants WHERE id = %s", (tenant_id,)).fetchone()["server_id"]


def test_a_silo_tenant_goes_to_the_open_server_with_the_most_room(second):
    placed = new_tenant()
    assert _server_of(placed.tenant_id) == second.id
    dbname = db.database_name(tenants.directory.get(placed.tenant_id).database_url)
    assert dbname in _databases_on(second.url) and dbname not in _databases_on(None)
    with db.tenant_transaction(placed.tenant_id) as conn:  # the application connects there, as its own role
        assert conn.execute("SELECT current_user AS u, count(*) AS n FROM users").fetchone() == {
            "u": "funnel_app", "n": 1}
    _set(second.id, state="draining")
    try:
        assert _server_of(new_tenant().tenant_id) == "primary"
    finally:
        _set(second.id, state="open")


def test_a_server_at_capacity_is_full_takes_nothing_and_opens_again_with_room(second):
    with db.control_admin_connect() as conn:
        held = store_tenants.server(conn, second.id)["databases"]
    _set(second.id, capacity=held)
    try:
        listed = {s.id: s for s in operations.run({"action": "list_servers"}).servers}
        assert listed[second.id].state == "full" and listed[second.id].databases == held
        assert _server_of(new_tenant().tenant_id) == "primary"
    finally:
        _set(second.id, capacity=100_000)
    assert {s.id: s.state for s in operations.run({"action": "list_servers"}).servers}[second.id] == "open"


def test_a_pooled_tenant_goes_into_a_pool_below_its_limit(second):
    pool = f"pool_{uuid.uuid4().hex[:8]}"
    first = new_tenant(pool=pool)  # a new pool: registered on the server with the most room
    assert _server_of(first.tenant_id) == second.id and pool in _databases_on(second.url)
    with db.control_admin_connect() as conn:
        conn.execute("UPDATE tenant_pools SET max_tenants = 2 WHERE database_name = %s", (pool,))
        assert store_tenants.pool(conn, pool)["tenants"] == 1
    new_tenant(pool=pool)
    with pytest.raises(Conflict, match="full"):
        new_tenant(pool=pool)
    with db.control_admin_connect() as conn:
        with_room = store_tenants.pool_with_room(conn)  # the session's other pools, if any has room
    chosen, _ = tenants.provision("Anywhere", f"owner-{uuid.uuid4().hex[:8]}@example.com", "a long password",
                                  pooled=True)
    placed_in = db.database_name(chosen.database_url)
    assert placed_in != pool
    if with_room is None:  # every pool full: a new one, on the server with the most room
        assert placed_in.startswith("funnel_pool_") and placed_in in _databases_on(second.url)
    else:
        assert placed_in == with_room["database_name"]


def test_migrate_all_reaches_the_tenants_of_every_server(second):
    placed = new_tenant()
    report = operations.run({"action": "migrate_all", "workers": 2})
    by_slug = {slug: d for d in report.databases for slug in d.tenants}
    assert by_slug[placed.slug].server_id == second.id and by_slug[placed.slug].status == "at_head"


def _write_prompt(tenant_id: str, content: str, attempts: int = 1) -> None:
    """A write of the tenant; ``attempts`` > 1 tries again where a pooled connection was ended by a move (its first
    use afterwards fails, as it does for a request of the API: see docs/tenant-placement.md)."""
    for attempt in range(attempts):
        try:
            with db.tenant_transaction(tenant_id) as conn:
                conn.execute("INSERT INTO prompts (step, version, content) VALUES ('moving', "
                             "(SELECT coalesce(max(version), 0) + 1 FROM prompts), %s)", (content,))
            return
        except psycopg.OperationalError:
            if attempt == attempts - 1:
                raise


def test_a_tenant_moves_to_another_server_with_its_writes_refused_during_the_copy(second, monkeypatch, capsys):
    _set(second.id, state="draining")
    try:
        moving = new_tenant()
    finally:
        _set(second.id, state="open")
    assert _server_of(moving.tenant_id) == "primary"
    _write_prompt(moving.tenant_id, "before the move")
    dbname = db.database_name(tenants.directory.get(moving.tenant_id).database_url)
    refused: list[str] = []
    real_copy = operations_move.copy_database

    def copy_while_writing(source_url, target_url):
        try:
            _write_prompt(moving.tenant_id, "during the move", attempts=3)
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            refused.append(exc.sqlstate or "")
        real_copy(source_url, target_url)

    monkeypatch.setattr(operations_move, "copy_database", copy_while_writing)
    assert cli.main(["tenants", "move", moving.slug, "--to", second.id, "--grace-seconds", "0"]) == 0
    report = printed_json(capsys.readouterr().out)
    assert refused == ["25006"]  # read_only_sql_transaction
    assert (report["from_server"], report["to_server"], report["database"]) == ("primary", second.id, dbname)
    assert report["rows"]["prompts"] == 1 and report["rows"]["users"] == 1
    assert _server_of(moving.tenant_id) == second.id
    assert dbname in _databases_on(second.url) and dbname not in _databases_on(None)
    _write_prompt(moving.tenant_id, "after the move", attempts=3)  # writable again, where it lives now
    with db.tenant_transaction(moving.tenant_id) as conn:
        assert [r["content"] for r in conn.execute("SELECT content FROM prompts ORDER BY version")] == [
            "before the move", "after the move"]


def test_a_failed_move_leaves_the_tenant_where_it_was_and_writable(second, monkeypatch):
    _set(second.id, state="draining")
    try:
        staying = new_tenant()
    finally:
        _set(second.id, state="open")
    dbname = db.database_name(tenants.directory.get(staying.tenant_id).database_url)

    def broken_copy(source_url, target_url):
        raise RuntimeError("pg_restore failed: the disk is full")

    monkeypatch.setattr(operations_move, "copy_database", broken_copy)
    with pytest.raises(RuntimeError, match="disk is full"):
        operations_move.move_tenant(staying.slug, second.id, grace_seconds=0)
    assert _server_of(staying.tenant_id) == "primary" and dbname not in _databases_on(second.url)
    _write_prompt(staying.tenant_id, "still here", attempts=3)
    with pytest.raises(Conflict, match="pooled"):
        operations_move.move_tenant(new_tenant(pool=f"pool_{uuid.uuid4().hex[:8]}").slug, "primary", grace_seconds=0)
    with pytest.raises(Conflict, match="already"):
        operations_move.move_tenant(staying.slug, "primary", grace_seconds=0)

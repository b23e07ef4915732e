"""Workspace export (POST /v1/export, GET /v1/export/{run_id}) and its restore (``funnel tenants restore``) against
the tests' PostgreSQL and moto: a silo and a pooled workspace with data in several areas are exported through the
API, downloaded through the presigned link, restored into an empty database and found there row for row (the
pooled one without its neighbour's rows); members are refused, one export runs at a time (two POSTs at once: one
run), a refused S3 put and a failed start end the run failed."""
from __future__ import annotations

import contextlib
import hashlib
import json
import tarfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from psycopg import sql

from funnel import db
from funnel.cli import main as funnel
from funnel.platform import aws, deletion, export, migrations, runs, storage, tenants, users
from funnel.settings import get_settings
from tests.support.cli import printed_json
from tests.support.gateway_client import gateway_client
from tests.support.tenants import PASSWORD, TenantHandle, new_pooled_tenant, new_tenant
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("runtime")


def _seed(tenant: TenantHandle, label: str) -> None:
    """Rows in several areas (users, settings, contacts, a campaign with messages, an article, community
    developers and activities) and S3 objects under the prefixes the product writes for a tenant."""
    tid = tenant.tenant_id
    users.create_user(tid, email=f"member-{label}-{uuid.uuid4().hex[:6]}@example.com", password=PASSWORD,
                      role="member", display_name=f"Member {label}", actor=tenant.owner)
    with db.tenant_transaction(tid) as conn:
        run = str(runs.create_run(conn, "article_pipeline", {"label": label}, tenant.owner_id, 2)["id"])
        for step in ("plan", "write"):
            runs.start_step(conn, run, step)
            runs.complete_step(conn, run, step, token_usage={"prompt_tokens": 1, "completion_tokens": 2,
                                                              "total_tokens": 3}, cost_usd=0.25)

        def insert(statement: str, *params: object) -> str:
            """The new row's id (its first column)."""
            return str(next(iter(conn.execute(statement + " RETURNING *", params).fetchone().values())))

        conn.execute("INSERT INTO system_settings (base_url, send_window) VALUES (%s, %s) ON CONFLICT (tenant_id) "
                     "DO UPDATE SET base_url = EXCLUDED.base_url, send_window = EXCLUDED.send_window",
                     (f"https://{label}.example.com", json.dumps({"start": "09:00", "end": "18:00"})))
        contacts = [insert("INSERT INTO contacts (company_name, domain) VALUES (%s, %s)", f"{label} Co {i}",
                           f"{label}-{i}.example.com") for i in range(3)]
        campaign = insert("INSERT INTO email_campaigns (name, subject, body, from_name, from_address, "
                          "sender_identity) VALUES (%s, 's', 'body\ttab\nline', 'f', 'f@x.jp', 'f@x.jp')",
                          f"{label} campaign")
        for contact in contacts:
            insert("INSERT INTO email_messages (campaign_id, contact_id, email) VALUES (%s, %s, %s)",
                   campaign, contact, f"{contact[:8]}@{label}.example.com")
        product = insert("INSERT INTO products (url, name) VALUES (%s, %s)", f"https://{label}.example.com", label)
        cluster = insert("INSERT INTO article_clusters (product_id, pillar_keyword) VALUES (%s, 'pillar')", product)
        insert("INSERT INTO articles (cluster_id, keyword, title, content, outline) VALUES (%s, 'k', %s, %s, %s)",
               cluster, f"{label} article", "Ünïcode \\ backslash", json.dumps({"h2": ["a", "b"]}))
        developers = [insert("INSERT INTO developers (display_name, primary_email, tags) VALUES (%s, %s, %s)",
                             f"{label} dev {i}", f"dev{i}@{label}.example.com", ["a", "b"]) for i in range(2)]
        for i, developer in enumerate(developers):
            insert("INSERT INTO activities (developer_id, action, occurred_at, source, metadata, confidence) "
                   "VALUES (%s, 'star', %s, 'github', %s, 0.75)", developer,
                   datetime(2026, 1, 1 + i, 12, tzinfo=UTC), json.dumps({"repo": label}))
    for key in (f"storage/{tid}/run/step/output.json", f"attachments/{tid}/c/a/file.pdf",
                f"imports/{tid}/activities/uploads/u.csv", f"exports/{tid}/old.tar.gz"):
        storage.put_bytes(key, f"{label}:{key}".encode(), "application/octet-stream")


@pytest.fixture(scope="module")
def silo() -> TenantHandle:
    tenant = new_tenant()
    _seed(tenant, "silo")
    yield tenant
    deletion.purge_now(tenant.slug)


@pytest.fixture(scope="module")
def pooled() -> tuple[TenantHandle, TenantHandle]:
    """A pooled workspace and its neighbour in the same database, both with data."""
    tenant, neighbour = new_pooled_tenant(), new_pooled_tenant()
    _seed(tenant, "pooled")
    _seed(neighbour, "neighbour")
    return tenant, neighbour


@pytest.fixture
def empty_database():
    name = f"funnel_restore_{uuid.uuid4().hex[:10]}"
    migrations.ensure_database(name)
    yield migrations.server_database_url(None, name)
    tenants.drop_database(name)


def _export(api: httpx.Client, tenant: TenantHandle) -> dict:
    """Start an export and wait for it to end; its final answer."""
    started = api.post("/v1/export", headers=tenant.headers)
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    return wait_until(lambda: api.get(f"/v1/export/{run_id}", headers=tenant.headers).json(),
                      lambda body: body["status"] in ("completed", "failed"), 60, "the export to end")


def _download(url: str, into: Path) -> Path:
    answer = httpx.get(url, timeout=30)
    assert answer.status_code == 200, answer.text
    path = into / "export.tar.gz"
    path.write_bytes(answer.content)
    return path


def _manifest(path: Path) -> tuple[dict, dict[str, bytes]]:
    with tarfile.open(path, "r:gz") as tar:
        files = {member.name: tar.extractfile(member).read() for member in tar.getmembers()}
    return json.loads(files["manifest.json"]), files


# the tables holding tenants' rows (the others hold the migrations' reference data)
TENANT_TABLES = ("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                 "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' "
                 "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1")


def _sorted_rows(url: str, tenant_id: str, skip_runs: set[str] = frozenset()) -> dict[str, list[bytes]]:
    """Every table's rows of the tenant, as sorted COPY text lines (the owner role, times in UTC)."""
    rows: dict[str, list[bytes]] = {}
    with db.Connection.connect(migrations.owner_url(url), autocommit=False) as conn, conn.transaction():
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_id,))
        names = [r[0] for r in conn.execute(TENANT_TABLES)]
        for name in names:
            query = sql.SQL("COPY (SELECT * FROM {} WHERE tenant_id = {}{}) TO STDOUT").format(
                sql.Identifier(name), sql.Literal(tenant_id),
                sql.SQL(" AND id::text <> ALL({})").format(sql.Literal(sorted(skip_runs)))
                if name == "runs" else sql.SQL(""))
            with conn.cursor() as cursor, cursor.copy(query) as copy:
                data = b"".join(bytes(chunk) for chunk in copy)
            rows[name] = sorted(data.splitlines())
    return rows


def _database_url(tenant: TenantHandle) -> str:
    return tenants.directory.get(tenant.tenant_id).database_url


def _restore(archive: Path | str, url: str, capsys) -> dict:
    assert funnel(["tenants", "restore", str(archive), "--database-url", url]) == 0
    return printed_json(capsys.readouterr().out)


def test_a_silo_workspace_is_exported_downloaded_and_restored_with_the_same_rows(api, silo, empty_database, tmp_path,
                                                                                  capsys):
    done = _export(api, silo)
    assert done["status"] == "completed", done["error_message"]
    run_id, archive = done["run_id"], done["archive"]
    progress = done["progress"]
    assert progress["tables_done"] == progress["tables_total"] == archive["tables"] > 40
    assert progress["steps_done"] == progress["steps_total"] == archive["tables"] + 2 and progress["percent"] == 100
    assert progress["rows"] == archive["rows"] and archive["key"] == f"exports/{silo.tenant_id}/{run_id}.tar.gz"
    run = api.get(f"/v1/runs/{run_id}", headers=silo.headers).json()
    assert (run["kind"], run["status"], run["progress"]["percent"]) == ("workspace_export", "completed", 100)

    # the link: a presigned GET that expires in an hour
    query = parse_qs(urlsplit(done["download_url"]).query)
    assert query["X-Amz-Expires"] == ["3600"] and "X-Amz-Signature" in query
    expires_at = datetime.fromisoformat(done["expires_at"])
    assert timedelta(minutes=59) < expires_at - datetime.now(UTC) <= timedelta(hours=1)
    path = _download(done["download_url"], tmp_path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == archive["sha256"]
    head = storage.s3().head_object(Bucket=get_settings().artifacts_bucket, Key=archive["key"])
    assert head["ServerSideEncryption"] == "AES256"

    manifest, files = _manifest(path)
    assert manifest["format_version"] == 1 and manifest["tenant"]["slug"] == silo.slug
    assert manifest["tenant"]["isolation"] == "silo"
    assert set(manifest["revisions"]) == migrations.current_revisions(_database_url(silo))
    order = [t["name"] for t in manifest["tables"]]
    for before, after in (("users", "runs"), ("runs", "steps"), ("email_campaigns", "email_messages"),
                          ("contacts", "email_messages"), ("article_clusters", "articles"),
                          ("developers", "activities")):
        assert order.index(before) < order.index(after), (before, after)
    counts = {t["name"]: t["rows"] for t in manifest["tables"]}
    assert (counts["users"], counts["contacts"], counts["email_messages"], counts["articles"],
            counts["developers"], counts["activities"], counts["system_settings"], counts["steps"]) == (
        2, 3, 3, 1, 2, 2, 1, 2)
    assert sorted(t["name"] for t in manifest["schema_tables"]) == ["activity_funnel_defaults", "funnel_stages"]
    objects = [json.loads(line) for line in files["objects.jsonl"].splitlines()]
    keys = {o["key"] for o in objects}
    assert keys >= {f"storage/{silo.tenant_id}/run/step/output.json", f"attachments/{silo.tenant_id}/c/a/file.pdf",
                    f"imports/{silo.tenant_id}/activities/uploads/u.csv"}
    assert not any(key.startswith("exports/") for key in keys) and all(o["size"] > 0 and o["etag"] for o in objects)

    restored = _restore(path, empty_database, capsys)
    assert (restored["tenant_id"], restored["rows"], restored["created"]) == (silo.tenant_id, archive["rows"], False)
    assert restored["revisions"] == restored["migrated_to"] == manifest["revisions"]  # the archive was at heads
    source = _sorted_rows(_database_url(silo), silo.tenant_id, skip_runs={run_id})
    target = _sorted_rows(empty_database, silo.tenant_id, skip_runs={run_id})
    assert source.keys() == target.keys()
    for table in source:
        assert target[table] == source[table], table
    assert migrations.is_at_heads(migrations.current_revisions(empty_database))
    with db.Connection.connect(migrations.owner_url(empty_database)) as conn:
        assert conn.execute(f"SELECT bool_and(relforcerowsecurity) FROM pg_class WHERE relname IN ({TENANT_TABLES})"
                            ).fetchone() == (True,)  # lifted for the restore's transaction only
        # a new row of an identity column does not collide with a restored one
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (silo.tenant_id,))
        restored_ids = [r[0] for r in conn.execute("SELECT id FROM steps")]
        new_id = conn.execute("INSERT INTO steps (run_id, step, status) SELECT run_id, 'after-restore', 'running' "
                              "FROM steps LIMIT 1 RETURNING id").fetchone()[0]
    assert len(restored_ids) == 2 and new_id > max(restored_ids)


@pytest.fixture
def missing_database():
    name = f"funnel_restore_{uuid.uuid4().hex[:10]}"
    yield migrations.server_database_url(None, name)
    tenants.drop_database(name)


def test_a_pooled_workspace_exports_only_its_rows_and_restores_them(api, pooled, missing_database, tmp_path, capsys):
    tenant, neighbour = pooled
    empty_database = missing_database
    done = _export(api, tenant)
    assert done["status"] == "completed", done["error_message"]
    restored = _restore(done["archive"]["key"], empty_database, capsys)  # from S3, by its key, into a new database
    assert (restored["tenant_id"], restored["created"]) == (tenant.tenant_id, True)
    source = _sorted_rows(_database_url(tenant), tenant.tenant_id, skip_runs={done["run_id"]})
    target = _sorted_rows(empty_database, tenant.tenant_id, skip_runs={done["run_id"]})
    for table in source:
        assert target[table] == source[table], table
    assert all(not rows for rows in _sorted_rows(empty_database, neighbour.tenant_id).values())
    with db.Connection.connect(migrations.owner_url(empty_database)) as conn:
        tenant_ids = conn.execute("SELECT array_agg(DISTINCT tenant_id) FROM contacts").fetchone()[0]
    assert tenant_ids == [tenant.tenant_id]
    _, files = _manifest(_fetch(done["archive"]["key"], tmp_path))
    assert b"neighbour" not in b"".join(body for name, body in files.items() if name != "manifest.json")
    assert all(neighbour.tenant_id not in line for line in files["objects.jsonl"].decode().splitlines())


def _fetch(key: str, into: Path) -> Path:
    path = into / "fetched.tar.gz"
    path.write_bytes(storage.get_bytes(key))
    return path


def _member(tenant: TenantHandle) -> dict[str, str]:
    email = f"m-{uuid.uuid4().hex[:8]}@example.com"
    users.create_user(tenant.tenant_id, email=email, password=PASSWORD, role="member", display_name=None,
                      actor=tenant.owner)
    from funnel.platform import auth

    token = auth.login(email, PASSWORD, tenant.slug, "127.0.0.1")["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_members_are_refused_and_another_workspaces_export_is_not_found(api, pooled):
    tenant, neighbour = pooled
    member = _member(tenant)
    assert api.post("/v1/export", headers=member).status_code == 403
    with db.tenant_transaction(neighbour.tenant_id) as conn:
        theirs = str(runs.create_run(conn, export.KIND, {}, None)["id"])
    assert api.get(f"/v1/export/{theirs}", headers=member).status_code == 403
    assert api.get(f"/v1/export/{theirs}", headers=tenant.headers).status_code == 404
    with db.tenant_transaction(tenant.tenant_id) as conn:  # a run of another kind is no export
        other = str(runs.create_run(conn, "send_pipeline", {}, None)["id"])
    assert api.get(f"/v1/export/{other}", headers=tenant.headers).status_code == 404
    with db.tenant_transaction(neighbour.tenant_id) as conn:
        runs.update_run(conn, theirs, status="cancelled")


def test_one_export_at_a_time_and_a_dead_one_gives_way(api):
    tenant = new_pooled_tenant()
    with db.tenant_transaction(tenant.tenant_id) as conn:
        running = str(runs.create_run(conn, export.KIND, {}, tenant.owner_id)["id"])
        runs.update_run(conn, running, status="running")
    refused = api.post("/v1/export", headers=tenant.headers)
    assert refused.status_code == 409 and refused.json()["run_id"] == running
    with db.tenant_transaction(tenant.tenant_id) as conn:  # no progress for longer than a function can run
        conn.execute("UPDATE runs SET updated_at = now() - interval '1 hour' WHERE id = %s", (running,))
    assert api.post("/v1/export", headers=tenant.headers).status_code == 202
    dead = api.get(f"/v1/export/{running}", headers=tenant.headers).json()
    assert dead["status"] == "failed" and "without reporting" in dead["error_message"]


def test_two_exports_started_at_once_give_one_run(api, runtime):
    tenant = new_pooled_tenant()
    barrier = threading.Barrier(2)

    def start() -> int:
        with gateway_client(runtime.api_url, timeout=60) as client:
            barrier.wait()
            return client.post("/v1/export", headers=tenant.headers).status_code

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(lambda _: start(), range(2)))
    assert statuses == [202, 409]
    with db.tenant_transaction(tenant.tenant_id) as conn:
        assert len(runs.list_runs(conn, None, 10, kind=export.KIND).items) == 1


@contextlib.contextmanager
def refused(service: str, operation: str, code: str, status: int = 403):
    """The process's ``service`` client answers ``operation`` with this error (what the runtime's functions use
    too: they run in this process)."""
    client = aws.client(service)
    event = f"before-call.{client.meta.service_model.endpoint_prefix}.{operation}"

    class Answer:
        status_code = status

    def refuse(**_):
        return Answer(), {"Error": {"Code": code, "Message": f"{operation} refused by the test"},
                          "ResponseMetadata": {"HTTPStatusCode": status}}

    unique_id = f"funnel-test-refusal-{operation}"  # botocore keeps one handler per id, whatever its event
    client.meta.events.register(event, refuse, unique_id=unique_id)
    try:
        yield
    finally:
        client.meta.events.unregister(event, unique_id=unique_id)


def test_a_refused_archive_upload_ends_the_run_failed_with_its_reason(api):
    tenant = new_pooled_tenant()
    with refused("s3", "PutObject", "AccessDenied"), refused("s3", "CreateMultipartUpload", "AccessDenied"):
        done = _export(api, tenant)
    assert done["status"] == "failed" and "AccessDenied" in done["error_message"]
    assert done["download_url"] is None and done["archive"] is None and done["current_step"] == "upload"
    listed = storage.s3().list_objects_v2(Bucket=get_settings().artifacts_bucket, Prefix=f"exports/{tenant.tenant_id}/")
    assert listed.get("KeyCount", 0) == 0


def test_an_export_that_cannot_be_started_ends_failed_and_answers_503(api):
    tenant = new_pooled_tenant()
    with refused("lambda", "Invoke", "ServiceException", 500):
        answer = api.post("/v1/export", headers=tenant.headers)
    assert answer.status_code == 503, answer.text
    with db.tenant_transaction(tenant.tenant_id) as conn:
        [run] = runs.list_runs(conn, None, 10, kind=export.KIND).items
    assert run["status"] == "failed" and "could not be started" in run["error_message"]
    assert api.post("/v1/export", headers=tenant.headers).status_code == 202  # nothing half-started is left


def test_restore_refuses_a_database_with_rows(api, silo, capsys):
    done = _export(api, silo)
    assert funnel(["tenants", "restore", done["archive"]["key"], "--database-url", _database_url(silo)]) == 1
    assert "restore into an empty database" in capsys.readouterr().err


def test_an_archive_past_its_retention_gets_no_link(api, silo):
    done = _export(api, silo)
    assert done["download_url"]
    with db.tenant_transaction(silo.tenant_id) as conn:
        conn.execute("UPDATE runs SET finished_at = now() - make_interval(days => %s) WHERE id = %s",
                     (get_settings().export_retention_days, done["run_id"]))
    kept = api.get(f"/v1/export/{done['run_id']}", headers=silo.headers).json()
    assert (kept["status"], kept["download_url"], kept["expires_at"]) == ("completed", None, None)
    assert kept["archive"]["key"] == done["archive"]["key"]

"""Workspace export (issue #18 item 5): an archive of a tenant's data, and the restore that proves it.

- ``start_export`` (``POST /v1/export``): a run of kind ``workspace_export``, started asynchronously in the
  operations function (``export_tenant`` -> ``run_export``); one at a time per workspace.
- ``run_export``: one REPEATABLE READ, READ ONLY transaction over the tenant's database (every table of a silo
  database; a pooled database's rows of the tenant only, row-level security as the tenant and
  ``WHERE tenant_id``), each table streamed with ``COPY ... TO STDOUT`` through a spool file in /tmp into a
  tar.gz, with a manifest and an index of the tenant's S3 objects; the archive to
  ``exports/{tenant_id}/{run_id}.tar.gz`` (SSE), progress on the run as it goes.
- ``export_status`` (``GET /v1/export/{run_id}``): the run, and once it is done a presigned, expiring link.
- ``restore`` (``funnel tenants restore``): an archive into an empty database, migrated to the archive's
  revisions by the product's migrations, each table ``COPY ... FROM STDIN`` in dependency order, checked
  against the manifest's row counts and checksums in the same transaction.

Why not pg_dump, the archive's format and what is kept how long: docs/export.md.
"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from funnel import db
from funnel.observability import logger
from funnel.platform import audit, runs, storage, store_export
from funnel.platform.errors import Conflict, FunnelError, NotFound, ServiceUnavailable, ValidationFailed
from funnel.platform.principal import Principal
from funnel.settings import get_settings

KIND = "workspace_export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
OBJECTS = "objects.jsonl"
# The steps of an export besides one per table, in its run's progress.
OBJECTS_STEP, UPLOAD_STEP = "objects", "upload"
CHUNK_BYTES = 1 << 20


class ExportFailed(FunnelError):
    """An export that ended failed (its run says why); the operations report carries it without Lambda
    retrying the event: a retry would find the run failed."""
    status, title, type_suffix = 500, "Export failed", "export-failed"


class RestoreFailed(FunnelError):
    status, title, type_suffix = 422, "Restore failed", "restore-failed"


def archive_key(tenant_id: str, run_id: str) -> str:
    return f"exports/{tenant_id}/{run_id}.tar.gz"


def object_prefixes(tenant_id: str) -> list[str]:
    """Every prefix under which the product writes a tenant's objects: run outputs, screenshots and images
    (``storage/``), contact and activity CSV imports and their presigned uploads (``imports/``), campaign
    attachments (``attachments/``). ``exports/`` is left out: archives do not index each other."""
    return [f"storage/{tenant_id}/", f"imports/{tenant_id}/", f"attachments/{tenant_id}/"]


# ---------------------------------------------------------------- the API's side

def start_export(principal: Principal) -> db.Row:
    """A new export run, started in the operations function. 409 while another runs; when the start fails the
    run ends failed and the answer is a 503."""
    settings = get_settings()
    with db.tenant_transaction(principal.tenant_id) as conn:
        store_export.lock_exports(conn)
        for running in store_export.runs_in_progress(conn, KIND):
            if running["idle_seconds"] < settings.export_stale_seconds:
                raise Conflict("an export of this workspace is running: follow it with GET /v1/export/"
                               f"{running['id']}", run_id=str(running["id"]))
            # its function ended without reporting (a timeout): the run says so and a new one may start
            runs.update_run(conn, str(running["id"]), status="failed", error_message=(
                f"the export stopped without reporting: no progress for {settings.export_stale_seconds} s"))
        run = runs.create_run(conn, KIND, {"format_version": FORMAT_VERSION}, principal.user_id)
        run_id = str(run["id"])
        audit.record(conn, principal, "workspace.export", "run", run_id, {})
    from funnel.platform import operations_remote  # lazy: boto3's Lambda client serves this route only

    try:
        operations_remote.run_in_operations_function(
            {"action": "export_tenant", "tenant_id": principal.tenant_id, "run_id": run_id}, wait=False)
    except Exception as exc:
        logger.exception("the workspace export could not be started", extra={"run_id": run_id})
        with db.tenant_transaction(principal.tenant_id) as conn:
            runs.update_run(conn, run_id, status="failed",
                            error_message=f"the export could not be started: {type(exc).__name__}")
        raise ServiceUnavailable("the export could not be started; try again in a moment") from exc
    with db.tenant_transaction(principal.tenant_id) as conn:
        return runs.get_run(conn, run_id)


@dataclass(frozen=True)
class ExportView:
    run: db.Row
    download_url: str | None
    expires_at: datetime | None


def export_status(principal: Principal, run_id: str) -> ExportView:
    """The export run (404 for any other run, another tenant's included) and, once completed and while its
    archive is kept, a presigned GET of it valid for ``export_link_seconds``."""
    settings = get_settings()
    with db.tenant_transaction(principal.tenant_id) as conn:
        run = store_export.run_of_kind(conn, run_id, KIND)
    if run is None:
        raise NotFound("export not found")
    kept_until = run["finished_at"] + timedelta(days=settings.export_retention_days) if run["finished_at"] else None
    now = datetime.now(UTC)
    if run["status"] != "completed" or kept_until is None or kept_until <= now:
        return ExportView(run, None, None)
    seconds = settings.export_link_seconds
    url = _signed_get(archive_key(principal.tenant_id, run_id), seconds)
    return ExportView(run, url, now + timedelta(seconds=seconds))


def _signed_get(key: str, seconds: int) -> str:
    """A presigned GET signed with SigV4 (``X-Amz-Expires``; boto3 may otherwise sign an S3 link with the
    deprecated SigV2 in us-east-1), as an attachment named after the workspace's export. Its own client: only
    completed exports' answers pay for it."""
    import boto3  # lazy: see above
    from botocore.config import Config

    settings = get_settings()
    client = boto3.session.Session().client("s3", region_name=settings.region,
                                            config=Config(signature_version="s3v4"))
    return client.generate_presigned_url("get_object", ExpiresIn=seconds, Params={
        "Bucket": settings.artifacts_bucket, "Key": key,
        "ResponseContentDisposition": f'attachment; filename="{key.rsplit("/", 1)[-1]}"'})


# ---------------------------------------------------------------- the operations function's side

class _Progress:
    """The run's progress, each change committed at once (its own transaction) so GET shows it while the
    snapshot's transaction goes on."""

    def __init__(self, tenant_id: str, run_id: str) -> None:
        self.tenant_id, self.run_id = tenant_id, run_id
        self.state: dict[str, Any] = {"format_version": FORMAT_VERSION, "tables_done": 0, "tables_total": None,
                                      "rows": 0}
        self.steps_done = 0
        self.steps_total = 0

    def _save(self, **changes: Any) -> None:
        with db.tenant_transaction(self.tenant_id) as conn:
            runs.update_run(conn, self.run_id, config=self.state, steps_done=self.steps_done,
                            steps_total=self.steps_total, **changes)

    def begin(self, tables: int) -> None:
        self.state["tables_total"] = tables
        self.steps_total = tables + 2  # each table, the objects' index, the upload
        self._save()

    def step(self, name: str) -> None:
        self._save(current_step=name)

    def done(self, name: str, rows: int = 0, table: bool = False) -> None:
        self.steps_done += 1
        self.state["rows"] += rows
        if table:
            self.state["tables_done"] += 1
        self._save(current_step=name)

    def completed(self, archive: dict[str, Any]) -> None:
        """The last step (the upload) done, and the run with it."""
        self.steps_done += 1
        self.state["archive"] = archive
        self._save(status="completed", current_step=None)


def run_export(tenant_id: str, run_id: str) -> None:
    """Export the tenant into its run's archive (the ``export_tenant`` operation). A run that is not pending is
    left alone (an asynchronous invocation can be delivered twice). A failure ends the run failed with its
    reason and raises ExportFailed."""
    with db.tenant_transaction(tenant_id) as conn:
        claimed = store_export.claim_pending_run(conn, run_id, KIND)
    if claimed is None:
        logger.info("workspace export run is not pending: nothing to do", extra={"run_id": run_id})
        return
    progress = _Progress(tenant_id, run_id)
    try:
        tenant = db.directory.get(tenant_id)
        with tempfile.TemporaryDirectory(prefix="funnel-export-") as spool:
            path = Path(spool) / "archive.tar.gz"
            manifest = write_archive(tenant, path, progress)
            progress.step(UPLOAD_STEP)
            key = archive_key(tenant_id, run_id)
            digest = _file_sha256(path)
            _upload(path, key)
            archive = {"key": key, "bytes": path.stat().st_size, "sha256": digest, "revisions": manifest["revisions"],
                       "tables": len(manifest["tables"]), "rows": sum(t["rows"] for t in manifest["tables"]),
                       "objects": manifest["objects"]["count"], "objects_bytes": manifest["objects"]["bytes"]}
        progress.completed(archive)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"[:runs.MAX_ERROR_LENGTH]
        logger.exception("workspace export failed", extra={"run_id": run_id, "tenant_id": tenant_id})
        with db.tenant_transaction(tenant_id) as conn:
            runs.update_run(conn, run_id, status="failed", error_message=reason)
        raise ExportFailed(reason) from exc


def _upload(path: Path, key: str) -> None:
    """The archive to S3, in parts when large (boto3's transfer), encrypted at rest."""
    storage.s3().upload_file(str(path), get_settings().artifacts_bucket, key,
                             ExtraArgs={"ServerSideEncryption": "AES256", "ContentType": "application/gzip"})


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class RowDigest:
    """Row count and a checksum of COPY text that does not depend on the rows' order: the sum, modulo 2^256, of
    each row's SHA-256. The export and the restore's check read a table in whatever order the server scans it."""

    def __init__(self) -> None:
        self.rows = 0
        self._sum = 0
        self._rest = b""

    def update(self, chunk: bytes) -> None:
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            self._sum += int.from_bytes(hashlib.sha256(line).digest(), "big")
        self.rows += len(lines)

    def hexdigest(self) -> str:
        if self._rest:
            raise ValueError("COPY text ends in the middle of a row")
        return f"{self._sum % (1 << 256):064x}"


def dependency_order(tables: Iterable[str], references: Iterable[tuple[str, str]]) -> list[str]:
    """Tables so that each comes after every table it references (a reference to itself set aside: its rows are
    checked at the end of their COPY); by name among those free to go. A cycle is an error: its tables could
    not be loaded one after another with their keys checked."""
    names = sorted(set(tables))
    needs: dict[str, set[str]] = {name: set() for name in names}
    for table, referenced in references:
        if table in needs and referenced in needs and table != referenced:
            needs[table].add(referenced)
    order: list[str] = []
    while needs:
        free = sorted(name for name, required in needs.items() if not required)
        if not free:
            raise ValueError(f"the foreign keys of these tables form a cycle: {', '.join(sorted(needs))}")
        for name in free:
            order.append(name)
            del needs[name]
        for required in needs.values():
            required.difference_update(free)
    return order


def _snapshot(database_url: str) -> db.Connection:
    """A connection whose transactions are REPEATABLE READ and READ ONLY, as the owner role (it reads
    ``alembic_version`` too; row-level security binds it, FORCE'd on every table)."""
    import psycopg

    from funnel.platform import migrations

    conn = migrations.owner_connect(database_url, autocommit=False)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    return conn


def _add_file(tar: tarfile.TarFile, name: str, path: Path, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = path.stat().st_size, mtime, 0o644
    with path.open("rb") as file:
        tar.addfile(info, file)


def write_archive(tenant: db.Tenant, path: Path, progress: _Progress) -> dict[str, Any]:
    """The tenant's archive at ``path``: ``tables/<table>.copy`` (COPY text) each spooled next to it then
    added, ``objects.jsonl``, and ``manifest.json`` last (it counts what came before). Its manifest. Tables
    without ``tenant_id`` hold the migrations' reference data: only their checksum is kept (``schema_tables``)."""
    created_at = datetime.now(UTC)
    mtime = created_at.timestamp()
    pooled = tenant.isolation != "silo"
    spool = path.parent / "table.copy"
    tables: list[dict[str, Any]] = []
    with tarfile.open(path, "w:gz") as tar, _snapshot(tenant.database_url) as conn, conn.transaction():
        store_export.pin_settings(conn, tenant.id)
        found = {row["name"]: row for row in store_export.tables(conn)}
        order = dependency_order(found, ((r["table"], r["referenced"]) for r in store_export.references(conn)))
        store_export.lock_tables(conn, [*order, "alembic_version"])
        revisions = store_export.revisions(conn)
        schema_tables = []
        for name in [name for name in order if not found[name]["has_tenant_id"]]:
            # reference data the migrations write (community's funnel stages), the same in every tenant database:
            # the restore's migrations write it again; its checksum proves they wrote the same
            rows = RowDigest()
            for chunk in store_export.copy_out(conn, name, found[name]["columns"], None):
                rows.update(chunk)
            schema_tables.append({"name": name, "columns": found[name]["columns"], "rows": rows.rows,
                                  "checksum": rows.hexdigest()})
            order.remove(name)
        progress.begin(len(order))
        for name in order:
            table = found[name]
            progress.step(f"table {name}")
            rows = RowDigest()
            with spool.open("wb") as file:
                for chunk in store_export.copy_out(conn, name, table["columns"], tenant.id if pooled else None):
                    file.write(chunk)
                    rows.update(chunk)
            member = f"tables/{name}.copy"
            _add_file(tar, member, spool, mtime)
            spool.unlink()
            tables.append({"name": name, "file": member, "columns": table["columns"], "rows": rows.rows,
                           "checksum": rows.hexdigest()})
            progress.done(f"table {name}", rows.rows, table=True)
        progress.step(OBJECTS_STEP)
        objects = _write_object_index(tenant.id, spool)
        _add_file(tar, OBJECTS, spool, mtime)
        spool.unlink()
        progress.done(OBJECTS_STEP)
        manifest = {"format_version": FORMAT_VERSION, "created_at": created_at.isoformat(),
                    "tenant": {"id": tenant.id, "slug": tenant.slug, "name": tenant.name,
                               "isolation": tenant.isolation},
                    "revisions": revisions, "checksum": "sum of the SHA-256 of each row's COPY text, modulo 2^256",
                    "tables": tables, "schema_tables": schema_tables, "objects": objects}
        body = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime, info.mode = len(body), mtime, 0o644
        tar.addfile(info, io.BytesIO(body))
    return manifest


def _write_object_index(tenant_id: str, path: Path) -> dict[str, Any]:
    """One JSON line per object of the tenant (key, size, ETag, last modified) at ``path``; the totals."""
    bucket = get_settings().artifacts_bucket
    pages = storage.s3().get_paginator("list_objects_v2")
    count = size = 0
    prefixes = object_prefixes(tenant_id)
    with path.open("w", encoding="utf-8") as file:
        for prefix in prefixes:
            for page in pages.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    file.write(json.dumps({"key": item["Key"], "size": item["Size"], "etag": item["ETag"].strip('"'),
                                           "last_modified": item["LastModified"].isoformat()}) + "\n")
                    count += 1
                    size += item["Size"]
    return {"file": OBJECTS, "bucket": bucket, "prefixes": prefixes, "count": count, "bytes": size}


# ---------------------------------------------------------------- restore (an operator's command)

@dataclass
class RestoredTable:
    name: str
    rows: int


@dataclass
class RestoreReport:
    tenant_id: str
    slug: str
    database: str
    revisions: list[str]
    tables: list[RestoredTable] = field(default_factory=list)
    migrated_to: list[str] = field(default_factory=list)
    created: bool = False

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def fetch_archive(source: str, into: Path) -> Path:
    """The archive as a local file: ``source`` itself when it is one, else an S3 object (``s3://bucket/key``,
    or a key of the artifacts bucket such as ``exports/{tenant_id}/{run_id}.tar.gz``) downloaded into ``into``."""
    local = Path(source)
    if local.is_file():
        return local
    if source.startswith("s3://"):
        bucket, _, key = source[len("s3://"):].partition("/")
    else:
        bucket, key = get_settings().artifacts_bucket, source
    if not key:
        raise RestoreFailed(f"{source}: neither a file nor an S3 key")
    target = into / "archive.tar.gz"
    storage.s3().download_file(bucket, key, str(target))
    return target


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise RestoreFailed(f"the archive has no {MANIFEST}: not a workspace export")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise RestoreFailed(f"archive format {manifest.get('format_version')!r}: this release restores format "
                            f"{FORMAT_VERSION}")
    return manifest


def _chunks(file: IO[bytes]) -> Iterator[bytes]:
    while chunk := file.read(CHUNK_BYTES):
        yield chunk


def _owner_url(database_url: str) -> str:
    """The URL as given when it carries credentials, else with the owner role's."""
    from funnel.platform import migrations

    return database_url if urlsplit(database_url).username else migrations.owner_url(database_url)


def restore(source: str, database_url: str) -> RestoreReport:
    """Restore the archive ``source`` into the empty database ``database_url`` (on a server of this deployment;
    without credentials in it, the owner role's are used; created when it does not exist): migrated to the
    archive's revisions, then every table in one transaction, which commits only when each table's row count and
    checksum match the manifest; then migrated on to this release's heads."""
    from funnel.platform import migrations  # lazy: alembic serves the restore only

    url = _owner_url(database_url)
    created = migrations.ensure_database(db.database_name(url), db.strip_credentials(url))
    with tempfile.TemporaryDirectory(prefix="funnel-restore-") as work:
        folder = Path(work) / "archive"
        with tarfile.open(fetch_archive(source, Path(work)), "r:gz") as tar:
            tar.extractall(folder, filter="data")
        manifest = read_manifest(folder)
        revisions = list(manifest["revisions"])
        _check_empty(url, manifest, revisions)
        migrations.ensure_app_role(db.strip_credentials(url))  # the migrations grant it the tables
        for revision in revisions:  # each area's branch to where the archive's database was
            migrations.run("tenant", url, "upgrade", revision)
        _check_schema_tables(url, manifest)
        report = RestoreReport(manifest["tenant"]["id"], manifest["tenant"]["slug"], db.database_name(url),
                               revisions, created=created)
        with db.Connection.connect(url, autocommit=False, row_factory=_dict_row()) as conn, conn.transaction():
            store_export.pin_settings(conn, manifest["tenant"]["id"])
            names = [table["name"] for table in manifest["tables"]]
            for name in names:
                store_export.lift_row_security(conn, name)
            for table in manifest["tables"]:
                with (folder / table["file"]).open("rb") as file:
                    store_export.copy_in(conn, table["name"], table["columns"], _chunks(file))
            for sequence in store_export.owned_sequences(conn):
                store_export.move_sequence_past_rows(conn, sequence["sequence"], sequence["table"],
                                                     sequence["column"])
            for table in manifest["tables"]:
                rows = RowDigest()
                for chunk in store_export.copy_out(conn, table["name"], table["columns"], None):
                    rows.update(chunk)
                if (rows.rows, rows.hexdigest()) != (table["rows"], table["checksum"]):
                    raise RestoreFailed(f"table {table['name']}: {rows.rows} rows restored with checksum "
                                        f"{rows.hexdigest()[:12]}, the archive has {table['rows']} with "
                                        f"{table['checksum'][:12]}: nothing restored")
                report.tables.append(RestoredTable(table["name"], rows.rows))
            for name in names:
                store_export.restore_row_security(conn, name)
        # an archive of an older release goes on to this release's schema, its rows through the same migrations
        # as every tenant database's
        migrations.run("tenant", url, "upgrade", "heads")
        with db.Connection.connect(url, autocommit=True, row_factory=_dict_row()) as conn:
            report.migrated_to = store_export.revisions(conn)
    return report


def _check_schema_tables(url: str, manifest: dict[str, Any]) -> None:
    """The reference data the migrations wrote into the target is the archive's (same rows, same checksum)."""
    with db.Connection.connect(url, autocommit=False, row_factory=_dict_row()) as conn, conn.transaction():
        store_export.pin_settings(conn, manifest["tenant"]["id"])
        for table in manifest["schema_tables"]:
            rows = RowDigest()
            for chunk in store_export.copy_out(conn, table["name"], table["columns"], None):
                rows.update(chunk)
            if (rows.rows, rows.hexdigest()) != (table["rows"], table["checksum"]):
                raise RestoreFailed(f"table {table['name']} as the migrations wrote it ({rows.rows} rows) is not "
                                    f"the archive's ({table['rows']} rows): the archive's revisions are not this "
                                    f"release's")


def _dict_row():
    from psycopg.rows import dict_row

    return dict_row


def _check_empty(url: str, manifest: dict[str, Any], revisions: list[str]) -> None:
    """The target holds no data: never migrated, or migrated to the archive's revisions (a restore that
    failed after its migration) with every table of the archive empty."""
    with db.Connection.connect(url, autocommit=True, row_factory=_dict_row()) as conn:
        if not store_export.has_alembic_version(conn):
            return
        current = store_export.revisions(conn)
        if current and sorted(current) != sorted(revisions):
            raise ValidationFailed(f"the database is at revisions {', '.join(current)}, the archive at "
                                   f"{', '.join(revisions)}: restore into an empty database")
        found = {row["name"] for row in store_export.tables(conn)}
        with conn.transaction():
            store_export.pin_settings(conn, manifest["tenant"]["id"])
            for table in manifest["tables"]:
                if table["name"] in found and store_export.count_rows(conn, table["name"]):
                    raise ValidationFailed(f"table {table['name']} of the database has rows: restore into an "
                                           f"empty database")

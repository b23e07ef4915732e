"""Workspace deletion (issue #18 item 6): the owner schedules it with a confirmation, a grace period follows
(cancellable; the workspace works as before), then the purge removes everything of the tenant.

- ``request_deletion``: an owner signed in (never an API key) types the workspace's slug (``confirm``) and, when
  they have one, their current password (checked like a sign-in, counted by the same limiter); the deletion is
  due ``workspace_deletion_grace_days`` later. Audited; every owner is told in-app and by e-mail.
- ``cancel_deletion``: an owner takes it back before it is due. Audited; every owner is told.
- ``purge_due`` (the hourly ``purge_due_deletions`` operation) and ``purge_now`` (``funnel tenants delete SLUG
  --yes``, the ``delete_tenant`` operation, through ``purge_now``): one purge, in an order that can stop
  anywhere and be run again (each step finds what the last one left):

  1. the tenant is marked ``deleted`` and due (sign-ins, tokens and keys refused; the hourly purge retries it);
  2. its Stripe subscription is canceled (and forgotten, so it is not canceled twice);
  3. its EventBridge schedules are deleted (their names are read from its database, so before that goes);
  4. its S3 objects, every version of every key under ``<kind>/<tenant id>/`` (exports included);
  5. its database is dropped (silo) or its rows deleted from its pool (``tenants.delete_data``);
  6. its rows of every control table with a ``tenant_id`` column, then its ``tenants`` row (the directory entry).

Its secrets are columns of its own rows (``funnel.platform.crypto``: encrypted with the deployment's one data
key), so they go with step 5: nothing of a tenant lives in Secrets Manager.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from funnel import db
from funnel.db import Row
from funnel.observability import logger
from funnel.platform import audit, auth, aws, storage, store_deletion, store_tenants, stripe_api, tenants
from funnel.platform.errors import Conflict, Forbidden, NotFound, ValidationFailed
from funnel.platform.principal import Principal
from funnel.platform.users import login_password_hash
from funnel.settings import get_settings

NOTIFICATION_CATEGORY = "workspace"


# ---------------------------------------------------------------- the workspace and its schedule

def workspace(principal: Principal) -> dict[str, Any]:
    """The caller's workspace, with its scheduled deletion (or None)."""
    with db.control_transaction() as conn:
        row = store_deletion.workspace(conn, principal.tenant_id)
    if row is None:
        raise NotFound("workspace not found")
    return _workspace_view(row)


def _workspace_view(row: Row) -> dict[str, Any]:
    deletion = None if row["deletion_requested_at"] is None else {
        "requested_at": row["deletion_requested_at"], "due_at": row["deletion_due_at"],
        "requested_by": row["deletion_requested_by"]}
    return {"id": row["id"], "slug": row["slug"], "name": row["name"], "isolation": row["isolation"],
            "plan": row["plan"], "email_verified": row["email_verified_at"] is not None, "deletion": deletion}


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _require_signed_in_owner(principal: Principal) -> None:
    if principal.api_key_id is not None:
        raise Forbidden("a workspace's deletion is asked for or cancelled by a signed-in owner, not an API key")
    if principal.role != "owner":
        raise Forbidden("only an owner may delete the workspace")


def request_deletion(principal: Principal, confirm: str, password: str | None) -> dict[str, Any]:
    """Schedule the caller's workspace for deletion after the grace period; 409 when one is scheduled."""
    _require_signed_in_owner(principal)
    with db.control_transaction() as conn:
        current = store_deletion.workspace(conn, principal.tenant_id)
    if current is None:
        raise NotFound("workspace not found")
    if confirm != current["slug"]:
        raise ValidationFailed.at(["body", "confirm"], f"type the workspace's slug, {current['slug']}, to confirm")
    if current["deletion_requested_at"] is not None:  # checked again, atomically, by the schedule's UPDATE
        raise Conflict(f"the workspace's deletion is already scheduled for {_utc(current['deletion_due_at'])}; "
                       "cancel it first to schedule it again")
    _check_current_password(principal, password)
    grace_days = get_settings().workspace_deletion_grace_days
    with db.tenant_transaction(principal.tenant_id) as conn:
        with db.control_transaction() as control:
            row = store_deletion.schedule(control, principal.tenant_id, principal.user_id, grace_days)
        if row is None:
            raise Conflict("the workspace's deletion is already scheduled; cancel it first to schedule it again")
        audit.record(conn, principal, "workspace.deletion_scheduled", "workspace", principal.tenant_id,
                     {"due_at": row["deletion_due_at"].isoformat(), "grace_days": grace_days})
        _tell_owners(conn, principal, f"Workspace {row['name']} will be deleted on {_utc(row['deletion_due_at'])}",
                     f"{principal.email or 'An owner'} asked for the deletion of the workspace {row['name']} "
                     f"({row['slug']}). On {_utc(row['deletion_due_at'])} its data, files, schedules "
                     "and subscription are removed for good. Until then it works as before, and any owner can "
                     "cancel the deletion.", "Cancel the deletion")
    _dispatch_notifications(principal.tenant_id)
    return _workspace_view(row)


def cancel_deletion(principal: Principal) -> dict[str, Any]:
    """Take back the caller's workspace's scheduled deletion; 404 when none is scheduled."""
    _require_signed_in_owner(principal)
    with db.tenant_transaction(principal.tenant_id) as conn:
        with db.control_transaction() as control:
            row = store_deletion.lock_workspace(control, principal.tenant_id)
            if row is None:
                raise NotFound("workspace not found")
            if row["deletion_requested_at"] is None:
                raise NotFound("no deletion of this workspace is scheduled")
            store_deletion.clear(control, principal.tenant_id)
        audit.record(conn, principal, "workspace.deletion_cancelled", "workspace", principal.tenant_id,
                     {"was_due_at": row["deletion_due_at"].isoformat()})
        _tell_owners(conn, principal, f"The deletion of workspace {row['name']} was cancelled",
                     f"{principal.email or 'An owner'} cancelled the deletion of the workspace {row['name']} "
                     f"({row['slug']}) that was due on {_utc(row['deletion_due_at'])}. "
                     "Nothing will be removed.", "Open the workspace settings")
    _dispatch_notifications(principal.tenant_id)
    return _workspace_view({**row, "deletion_requested_at": None, "deletion_due_at": None,
                            "deletion_requested_by": None})


def _check_current_password(principal: Principal, password: str | None) -> None:
    """The owner's current password, when they have one (a user of an OpenID provider may not), checked as a
    sign-in checks it (``auth.check_current_password``)."""
    user = login_password_hash(principal.tenant_id, principal.user_id)
    if user is None or user["password_hash"] is None:
        return
    if password is None:
        raise ValidationFailed.at(["body", "password"], "the owner's current password is needed to confirm",
                                  "missing")
    auth.check_current_password(principal, user["password_hash"], password, "password",
                                "is not the owner's current password")


def _tell_owners(conn: db.Connection, principal: Principal, title: str, body: str, action_label: str) -> None:
    """Every enabled owner, in-app and by e-mail, in the transaction of the change (queued after its commit)."""
    from funnel.notifications.service import notify  # lazy: notifications import the platform

    owners = store_deletion.owner_ids(conn) or [principal.user_id]
    notify(principal.tenant_id, recipient_user_ids=owners, category=NOTIFICATION_CATEGORY, title=title, body=body,
           channels=("IN_APP", "EMAIL"), priority="HIGH", related_entity_type="workspace",
           related_entity_id=principal.tenant_id, sender_user_id=principal.user_id,
           action_url=f"{get_settings().frontend_origin}/settings/workspace", action_label=action_label, conn=conn)


def _dispatch_notifications(tenant_id: str) -> None:
    from funnel.notifications.service import dispatch_pending

    dispatch_pending(tenant_id)  # the e-mails could only be queued after the commit


# ---------------------------------------------------------------- the purge

def purge_due() -> list[Row]:
    """Purge every tenant whose deletion is due (and finish any purge that stopped half way): the purged tenants'
    rows. One tenant's failure does not stop the others; it stays due for the next run, and the run raises
    naming it (the operations function's retries and dead-letter queue then see it)."""
    with db.control_admin_connect() as conn:
        due = store_deletion.due_tenant_ids(conn)
    purged, failed = [], []
    for tenant_id in due:
        try:
            row = _purge(tenant_id, partial(store_deletion.claim_due, tenant_id=tenant_id), wait=False)
        except Exception as exc:
            logger.exception("a workspace purge stopped; the next run finishes it", extra={"tenant_id": tenant_id})
            failed.append(f"{tenant_id}: {type(exc).__name__}: {exc}")
            continue
        if row is not None:
            purged.append(row)
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(due)} due workspace purges stopped (they stay due): "
                           + "; ".join(failed))
    return purged


def purge_now(slug: str) -> Row:
    """Purge the tenant ``slug`` now, whatever its schedule (also one a purge left half done): its row."""
    with db.control_admin_connect() as conn:
        found = store_deletion.tenant_id_by_slug(conn, slug)
    if found is None:
        raise NotFound(f"no tenant {slug!r}")
    row = _purge(found, partial(store_deletion.claim_now, slug=slug), wait=True)
    if row is None:  # deleted by the purge that held the lock meanwhile
        raise NotFound(f"no tenant {slug!r}")
    return row


def _purge(tenant_id: str, claim: Callable[[db.Connection], Row | None], wait: bool) -> Row | None:
    """Claim the tenant (``claim``: None when there is nothing to purge) and remove it, step by step, under its
    purge lock (a session lock: it ends with this connection, however the purge ends): the hourly run skips a
    tenant another purge holds (``wait`` False), the operator's is refused."""
    with db.control_admin_connect() as lock:
        if not store_deletion.try_lock_purge(lock, tenant_id):
            if not wait:
                return None
            raise Conflict("a purge of this tenant is under way; run it again once it ends")
        with db.control_admin_connect() as conn:
            tenant = claim(conn)
        if tenant is None:
            return None
        tenants.directory.forget(tenant_id)
        logger.info("purging a workspace", extra={"tenant_id": tenant_id, "slug": tenant["slug"]})
        _cancel_subscription(tenant)
        _delete_schedules(tenant)
        _delete_objects(tenant_id)
        tenants.delete_data(tenant)
        _delete_control_rows(tenant_id)
        tenants.directory.forget(tenant_id)
        return tenant


def _cancel_subscription(tenant: Row) -> None:
    """Cancel the tenant's Stripe subscription at once (no invoice for the rest of the period) and forget it.
    Stripe answers a second cancel with "no such subscription" (404) though the subscription can still be read:
    run again after a cancel whose forgetting was lost, a subscription Stripe reports canceled (or does not know
    at all) counts as done. Any other refusal stops the purge, which the next run retries."""
    import stripe  # lazy: only purges of paying workspaces call Stripe

    subscription_id = tenant["stripe_subscription_id"]
    if not subscription_id:
        return
    client = stripe_api.client(RuntimeError("the workspace has a Stripe subscription, but the Stripe API key is "
                                            "missing"))
    try:
        client.subscriptions.cancel(subscription_id, options={"idempotency_key": f"purge-{subscription_id}"})
    except stripe.InvalidRequestError as exc:
        if exc.http_status != 404:
            raise RuntimeError(f"Stripe did not cancel subscription {subscription_id}: {exc.user_message}") from exc
        try:
            status = client.subscriptions.retrieve(subscription_id).status
        except stripe.InvalidRequestError as missing:
            if missing.http_status != 404:
                raise
            status = "canceled"  # Stripe does not know it at all
        if status not in ("canceled", "incomplete_expired"):
            raise RuntimeError(f"Stripe did not cancel subscription {subscription_id}: it is {status}") from exc
    with db.control_admin_connect() as conn:
        store_deletion.forget_subscription(conn, tenant["id"])


def _delete_schedules(tenant: Row) -> None:
    """Delete the tenant's EventBridge schedules (content schedules), named in its database."""
    settings = get_settings()
    client = aws.client("scheduler")
    for name in _scheduler_names(tenant):
        try:
            client.delete_schedule(Name=name, GroupName=settings.scheduler_group)
        except client.exceptions.ResourceNotFoundException:
            pass  # deleted by an earlier run (or by hand)


def _scheduler_names(tenant: Row) -> list[str]:
    """The tenant's schedule names; none once a silo database is dropped (an earlier run deleted them first)."""
    from funnel.platform import migrations  # lazy: alembic serves few invocations

    url = tenant["database_url"]
    if tenant["isolation"] == "silo":
        with migrations.server_admin_connect(db.replace_database(url, "")) as server:
            if not store_deletion.database_exists(server, db.database_name(url)):
                return []
    with migrations.owner_connect(url, autocommit=False) as conn, conn.transaction():
        store_tenants.set_transaction_tenant(conn, tenant["id"])
        return store_deletion.scheduler_names(conn, tenant["id"])


# S3 takes at most this many keys per DeleteObjects request.
DELETE_BATCH = 1000


def _delete_objects(tenant_id: str) -> None:
    """Every version of every object under ``<kind>/<tenant id>/`` of the artifacts bucket, whatever the kind
    (``storage/``, ``imports/``, ``attachments/``, exports...: each kind of object the product writes keys by
    tenant this way), so the noncurrent versions the bucket keeps go too. The kinds are listed from the bucket
    itself (versions included), so a kind added later is covered."""
    s3, bucket = storage.s3(), get_settings().artifacts_bucket
    kinds = [prefix["Prefix"] for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket,
                                                                                              Delimiter="/")
             for prefix in page.get("CommonPrefixes", [])]
    for kind in kinds:
        pages = s3.get_paginator("list_object_versions").paginate(
            Bucket=bucket, Prefix=f"{kind}{tenant_id}/", PaginationConfig={"PageSize": DELETE_BATCH})
        for page in pages:
            versions = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                        for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if not versions:
                continue
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": versions, "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise RuntimeError(f"{len(answer['Errors'])} objects under {kind}{tenant_id}/ were not deleted, "
                                   f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}")


def _delete_control_rows(tenant_id: str) -> None:
    """The tenant's rows of every control table with a ``tenant_id`` column (the login directory, API key prefixes,
    sessions, account tokens, shortlink routes, billing history, Stripe events...), then its ``tenants`` row, in
    one transaction."""
    with db.control_admin_connect() as conn, conn.transaction():
        for table in store_tenants.tables_with_tenant_id(conn):
            store_tenants.delete_tenant_rows(conn, table, tenant_id)
        store_tenants.delete_tenant(conn, tenant_id)
        store_tenants.refresh_full_servers(conn)

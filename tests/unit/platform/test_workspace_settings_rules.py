"""The workspace settings' rules (``workspace_settings``) over an in-memory fake of ``store_settings``: which
shortlink domains are host names it takes, when the stored SMTP password is kept, dropped or replaced, that a
bad field writes and audits nothing, and that the audit names fields, never values; and the notifications
redaction of secret categories (``funnel.notifications.service.redacted``)."""
from __future__ import annotations

from contextlib import contextmanager

import pytest

from funnel import db
from funnel.notifications import service as notifications
from funnel.platform import workspace_settings
from funnel.platform.errors import ValidationFailed
from funnel.platform.models_settings import SettingsPatch
from funnel.platform.principal import Principal

ADMIN = Principal("tenant-a", "user-1", "admin")


class FakeSettingsStore:
    def __init__(self) -> None:
        self.row: dict | None = None
        self.writes = 0
        self.hosts_of_others: set[str] = set()

    def settings_row(self, conn, for_update: bool = False):
        return dict(self.row) if self.row else None

    def save_settings(self, conn, **values):
        self.row, self.writes = {**values, "updated_at": None}, self.writes + 1
        return dict(self.row)

    def shortlink_host_of_another_tenant(self, control, host, tenant_id):
        return host in self.hosts_of_others


@pytest.fixture
def store(monkeypatch):
    fake, audited = FakeSettingsStore(), []

    @contextmanager
    def transaction(*args):
        yield object()

    monkeypatch.setattr(db, "tenant_transaction", transaction)
    monkeypatch.setattr(db, "control_transaction", transaction)
    monkeypatch.setattr(workspace_settings, "store_settings", fake)
    monkeypatch.setattr(workspace_settings, "check_host", lambda host, port, allow: None)
    monkeypatch.setattr(workspace_settings.crypto, "encrypt", lambda plaintext, tenant_id: f"sealed:{plaintext}")
    monkeypatch.setattr(workspace_settings.audit, "record",
                        lambda conn, actor, action, kind, resource, details: audited.append(details))
    fake.audited = audited
    return fake


def _update(body: dict) -> dict:
    return workspace_settings.update(ADMIN, SettingsPatch.model_validate(body))


@pytest.mark.parametrize("domain", ["go.example.com", "Go.Example.COM.", "links-1.example.co.jp", "xn--bcher-kva.de"])
def test_a_host_name_is_taken_lower_cased(store, domain):
    assert _update({"shortlink_domain": domain})["shortlink_domain"] == domain.lower().rstrip(".")


@pytest.mark.parametrize("domain", ["localhost", "example", "10.0.0.1", "[::1]", "2001:db8::1", "-go.example.com",
                                    "go-.example.com", f"{'a' * 64}.example.com", "go.example.123", "go example.com",
                                    "go.example.com:8080", "https://go.example.com", "go.example.com/x",
                                    "links.internal", "shop.local", "go..example.com", "ｇｏ.example.com"])
def test_anything_else_is_a_422_naming_the_field_and_writes_nothing(store, domain):
    with pytest.raises(ValidationFailed) as refused:
        _update({"shortlink_domain": domain, "base_url": None})
    assert refused.value.extra["errors"][0]["loc"] == ["body", "shortlink_domain"]
    assert store.writes == 0 and store.audited == []


def test_a_domain_another_workspace_holds_links_on_is_refused(store):
    store.hosts_of_others.add("go.example.com")
    with pytest.raises(ValidationFailed, match="another workspace"):
        _update({"shortlink_domain": "GO.example.com"})
    assert store.writes == 0


def test_the_smtp_password_is_kept_only_while_the_server_stays(store):
    first = _update({"smtp": {"host": "mail.example.com", "username": "u", "password": "p1"}})
    assert first["smtp"]["password_set"] is True and "p1" not in str(first)
    assert store.row["smtp_settings"]["password_encrypted"] == "sealed:p1"
    assert store.audited[-1] == {"fields": ["smtp.host", "smtp.port", "smtp.username", "smtp.tls", "smtp.password"]}

    _update({"smtp": {"host": "mail.example.com", "username": "u", "port": 465, "tls": "tls"}})
    assert store.row["smtp_settings"]["password_encrypted"] == "sealed:p1"
    assert store.audited[-1] == {"fields": ["smtp.port", "smtp.tls"]}

    _update({"smtp": {"host": "mail.example.com", "username": "someone-else"}})
    assert store.row["smtp_settings"]["password_encrypted"] is None  # another account: the password does not follow
    assert "smtp.password" in store.audited[-1]["fields"]

    _update({"smtp": {"host": "mail.example.com", "username": "u", "password": "p2"}})
    _update({"smtp": {"host": "evil.example.net", "username": "u"}})
    assert store.row["smtp_settings"]["password_encrypted"] is None  # another server: neither
    _update({"smtp": {"host": "evil.example.net", "username": "u", "password": None}})
    assert store.row["smtp_settings"]["password_encrypted"] is None
    assert _update({"smtp": None})["smtp"] is None and store.audited[-1] == {"fields": ["smtp"]}


def test_fields_not_sent_are_left_as_they_are_and_an_empty_patch_writes_nothing(store):
    _update({"shortlink_domain": "go.example.com", "send_window": {"days": [5, 6]}})
    assert store.row["send_window"] == {"days": [5, 6], "start": "09:00", "end": "18:00", "timezone": "Asia/Tokyo"}
    writes = store.writes
    assert _update({})["shortlink_domain"] == "go.example.com" and store.writes == writes
    _update({"send_window": None})
    assert store.row["send_window"] is None and store.row["shortlink_domain"] == "go.example.com"


def test_secret_notifications_lose_their_message_link_and_variables_for_other_users():
    row = {"notification_category": "account", "title": "Reset your Funnel password", "message": "...",
           "action_url": "https://app.example.com/reset-password?token=abc", "template_variables": {"t": "abc"},
           "delivery_status": "DELIVERED"}
    shown = notifications.redacted(row)
    assert shown == {**row, "message": None, "action_url": None, "template_variables": None}
    other = {**row, "notification_category": "account.password_changed"}
    assert notifications.redacted(other) == other

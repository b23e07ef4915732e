"""Sign-up's input rules (``funnel.platform.signup.check_*``), no database: each refusal is a 422 naming the field,
what is accepted comes back normalised."""
from __future__ import annotations

import pytest

from funnel.platform import signup
from funnel.platform.errors import ValidationFailed
from funnel.platform.tenants import SLUG_RE

EMAIL, NAME, PASSWORD = ["body", "email"], ["body", "workspace_name"], ["body", "password"]


def _refused(check, *args) -> dict:
    with pytest.raises(ValidationFailed) as refused:
        check(*args)
    [error] = refused.value.extra["errors"]
    return error


@pytest.mark.parametrize("name", ["Acme\x07Corp", "Acme\nCorp", "Acme\tCorp", "Acme\x85", "\u202eevil",
                                  "left\u2066isolate", "line\u2028break", "lone \ud800"])
def test_names_with_control_characters_are_refused(name):
    assert _refused(signup.check_name, name, NAME)["loc"] == NAME


def test_a_name_is_stripped_and_any_script_is_fine():
    assert signup.check_name("  株式会社ファネル 🚀 ", NAME) == "株式会社ファネル 🚀"
    assert _refused(signup.check_name, "   ", NAME)["type"] == "string_too_short"


@pytest.mark.parametrize("address", ["not-an-email", "a@b", "a..b@example.com", "a b@example.com", "x@localhost",
                                     "x@example.test", "ünï@example.com", "@example.com"])
def test_addresses_that_are_not_addresses_are_refused(address):
    assert _refused(signup.check_email, address, EMAIL)["loc"] == EMAIL


@pytest.mark.parametrize("address", ["someone@mailinator.com", "someone@sub.mailinator.com",
                                     "someone@GuerrillaMail.com", "someone@yopmail.com"])
def test_disposable_mail_domains_are_refused_with_their_subdomains(address):
    assert _refused(signup.check_email, address, EMAIL)["type"] == "value_error.email_disposable"


def test_role_addresses_pass_and_the_domain_is_normalised():
    assert signup.check_email("Info@Example.COM", EMAIL).split("@") in (["Info", "example.com"],
                                                                        ["info", "example.com"])
    assert signup.check_email("admin@funnel-customer.co.jp", EMAIL) == "admin@funnel-customer.co.jp"
    assert signup.check_email("ann@exämple.com", EMAIL) == "ann@xn--exmple-cua.com"  # what SES can send to


@pytest.mark.parametrize("password", ["short", "x" * 1025, "aaaaaaaaaaaa", "ann@example.com", "ANN@EXAMPLE.COM",
                                      "long enough \udc80"])
def test_weak_or_unusable_passwords_are_refused(password):
    assert _refused(signup.check_password, password, "ann@example.com", PASSWORD)["loc"] == PASSWORD


def test_a_good_password_passes():
    signup.check_password("correct horse battery staple", "ann@example.com", PASSWORD)


def test_a_suffixed_slug_is_still_a_slug_and_differs_each_time():
    for base in ("acme", "a" * 63, "acme-", "ab"):
        suffixed = {signup.with_suffix(base) for _ in range(5)}
        assert len(suffixed) == 5 and all(SLUG_RE.match(slug) for slug in suffixed), suffixed

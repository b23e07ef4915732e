"""The addresses the SSRF guard refuses: every IPv6 range that embeds or routes to IPv4 (Python's ``is_global``
accepts 6to4), whether written in the URL or answered by DNS; and malformed URLs are an UnsafeUrlError."""
from __future__ import annotations

import socket

import pytest

from funnel.platform.ssrf import UnsafeUrlError, check_host, check_url, is_public_address, parse_url

EMBEDDING_OR_ROUTING_TO_IPV4 = [
    "2002:a9fe:a9fe::",         # 6to4 of 169.254.169.254
    "2002:808:808::1",          # 6to4 of a public address: refused too, the relay is not ours to trust
    "64:ff9b::a9fe:a9fe",       # NAT64 well-known prefix
    "64:ff9b:1::a9fe:a9fe",     # NAT64 local-use prefix
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "::a9fe:a9fe", "::8.8.8.8",  # IPv4-compatible
    "::ffff:a9fe:a9fe", "::ffff:8.8.8.8",  # IPv4-mapped
    "::ffff:0:a9fe:a9fe",       # IPv4-translated
]
OTHER_NON_PUBLIC = ["::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1", "100::1",
                    "127.0.0.1", "10.1.2.3", "100.64.0.1", "169.254.169.254", "198.18.0.1", "192.0.2.1",
                    "240.0.0.1", "255.255.255.255"]


@pytest.mark.parametrize("address", EMBEDDING_OR_ROUTING_TO_IPV4 + OTHER_NON_PUBLIC)
def test_the_address_is_not_public(address):
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "2606:4700:4700::1111"])
def test_public_unicast_addresses_are_public(address):
    assert is_public_address(address)


@pytest.mark.parametrize("address", EMBEDDING_OR_ROUTING_TO_IPV4)
def test_a_url_or_a_host_on_such_an_address_is_refused(address):
    with pytest.raises(UnsafeUrlError):
        check_url(f"http://[{address}]/")
    with pytest.raises(UnsafeUrlError):
        check_host(address, 587)


@pytest.mark.parametrize("address", EMBEDDING_OR_ROUTING_TO_IPV4)
def test_a_name_resolving_to_such_an_address_is_refused(address, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", port)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))])
    with pytest.raises(UnsafeUrlError, match="private or reserved"):
        check_url("https://mixed.example/")
    with pytest.raises(UnsafeUrlError, match="private or reserved"):
        check_host("mail.mixed.example", 587)


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:80:80/", "http://[::1]:99999/",
                                 "http://[2002:a9fe:a9fe::", "http://exa mple.com/", "http://a\tb/",
                                 "http://[not-an-ip]/", "http://8.8.8.8:-1/"])
def test_malformed_urls_are_unsafe_not_a_crash(url):
    with pytest.raises(UnsafeUrlError):
        parse_url(url)
    with pytest.raises(UnsafeUrlError):
        check_url(url)

import pytest

from funnel.platform.ssrf import UnsafeUrlError, check_url


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://localhost:8080/x", "http://10.0.0.5/", "http://192.168.1.1/",
    "http://172.16.3.4/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://0.0.0.0/",
    "http://[::ffff:127.0.0.1]/", "http://100.64.0.1/", "http://224.0.0.1/",
])
def test_private_loopback_link_local_and_reserved_addresses_are_refused(url):
    with pytest.raises(UnsafeUrlError):
        check_url(url)


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "javascript:alert(1)", "gopher://x/",
                                 "http://user:pw@8.8.8.8/", "http:///nohost", "http://8.8.8.8:99999/"])
def test_bad_schemes_credentials_and_malformed_urls_are_refused(url):
    with pytest.raises(UnsafeUrlError):
        check_url(url)


def test_public_addresses_pass_and_the_allow_list_admits_local_test_sites():
    assert check_url("https://8.8.8.8/path") == "https://8.8.8.8/path"
    assert check_url("http://127.0.0.1:8123/form", allow_hosts=["127.0.0.1:8123"])
    with pytest.raises(UnsafeUrlError):  # the allow-list is per host:port when a port is given
        check_url("http://127.0.0.1:9999/form", allow_hosts=["127.0.0.1:8123"])
    assert check_url("http://localhost:1234/", allow_hosts=["localhost"])

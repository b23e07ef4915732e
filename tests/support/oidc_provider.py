"""A local OpenID provider for the sign-in tests: the maintained ``oidc-provider-mock`` (a Flask app) over HTTPS
on 127.0.0.1, in a thread between ``start()`` and ``stop()`` (or as a context manager).

The mock issues real authorization codes and RS256 ID tokens with the claims a test gives a user
(``set_user``), and its authorization endpoint lets a test pick the user with a plain form POST
(``authorize``: the browser step). A thin WSGI layer of ours in front of it adds what a test needs and the mock
does not do:

- **PKCE**: the mock ignores ``code_challenge``; the layer remembers each authorization request's challenge with
  the code the mock gave, and the token endpoint refuses (``invalid_grant``) a ``code_verifier`` whose S256 is
  not that challenge, as a real provider does;
- **keys of the test's own** in the JWKS next to the mock's (an RS256 and an ES256 one), so a test can re-sign
  the mock's claims (``rewrite_id_token``: expired, another audience, another nonce...) and only that claim is
  wrong; ``rogue`` is a key the JWKS never publishes (a forged token);
- the token requests it received (``token_requests``: form and Authorization header).
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.network import self_signed_certificate

HOST = "127.0.0.1"
PUBLISHED_KID, PUBLISHED_EC_KID, ROGUE_KID = "test-published", "test-published-ec", "test-rogue"


@dataclass
class TokenRequest:
    form: dict[str, str]
    authorization: str | None


@dataclass
class _Keys:
    """The layer's signing keys: kid -> (private key, algorithm); only ``published`` ones are in the JWKS."""
    private: dict[str, tuple[Any, str]] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)

    def add(self, kid: str, algorithm: str, publish: bool) -> None:
        key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if algorithm == "RS256"
               else ec.generate_private_key(ec.SECP256R1()))
        self.private[kid] = (key, algorithm)
        if publish:
            self.published.append(kid)

    def jwks(self) -> list[dict[str, Any]]:
        keys = []
        for kid in self.published:
            key, algorithm = self.private[kid]
            codec = RSAAlgorithm if algorithm == "RS256" else ECAlgorithm
            jwk = codec.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": algorithm})
        return keys


class OidcProvider:
    def __init__(self) -> None:
        import werkzeug.serving
        from oidc_provider_mock import app as mock_app

        self._directory = tempfile.TemporaryDirectory(prefix="funnel-oidc-")
        self.ca_file, key_file = self_signed_certificate(Path(self._directory.name), HOST)
        self.mock = mock_app()
        self.keys = _Keys()
        self.keys.add(PUBLISHED_KID, "RS256", publish=True)
        self.keys.add(PUBLISHED_EC_KID, "ES256", publish=True)
        self.keys.add(ROGUE_KID, "RS256", publish=False)
        # Set by a test: given the claims of the ID token the mock issued, the token to answer instead.
        self.rewrite_id_token: Callable[[dict[str, Any]], str] | None = None
        self.token_requests: list[TokenRequest] = []
        self.authorization_requests: list[dict[str, str]] = []
        self._challenges: dict[str, str] = {}  # code -> the code_challenge of its authorization request
        self._lock = threading.Lock()
        self.server = werkzeug.serving.make_server(HOST, 0, self._wsgi, threaded=True,
                                                   ssl_context=(self.ca_file, key_file))
        self.issuer = f"https://{HOST}:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"test-oidc-provider-{self.server.server_port}", daemon=True)
        self._client = httpx.Client(base_url=self.issuer, verify=ssl.create_default_context(cafile=self.ca_file),
                                    timeout=10)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> OidcProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._client.close()
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join(5)
        self.server.server_close()
        self._directory.cleanup()

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------ what a test does
    def set_user(self, sub: str, claims: dict[str, Any]) -> None:
        """The claims the mock puts in the ID tokens of ``sub`` (``email``, ``email_verified``...)."""
        self._client.put(f"/users/{sub}", json=claims).raise_for_status()

    def authorize(self, authorization_url: str, sub: str) -> dict[str, str]:
        """The browser step: sign in at the provider as ``sub``; the parameters of the redirect back (``code``,
        ``state``), and ``redirect_uri``, where it went."""
        answer = self._client.post(authorization_url, data={"sub": sub}, follow_redirects=False)
        assert answer.status_code == 302, (answer.status_code, answer.text[:500])
        location = urlsplit(answer.headers["location"])
        back = {name: values[0] for name, values in parse_qs(location.query).items()}
        return {**back, "redirect_uri": f"{location.scheme}://{location.netloc}{location.path}"}

    def sign(self, claims: dict[str, Any], kid: str = PUBLISHED_KID, header_kid: str | None = None) -> str:
        """``claims`` signed with the layer's key ``kid`` (its header naming ``header_kid``, by default ``kid``)."""
        key, algorithm = self.keys.private[kid]
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": header_kid or kid})

    def publish(self, kid: str, algorithm: str = "RS256") -> None:
        """A new key in the JWKS (a rotation)."""
        with self._lock:
            self.keys.add(kid, algorithm, publish=True)

    def mock_kid(self) -> str:
        return self._client.get("/jwks").json()["keys"][0]["kid"]

    # ------------------------------------------------------------ the WSGI layer
    def _call_mock(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        answer: dict[str, Any] = {}

        def start_response(status, headers, exc_info=None):
            answer["status"], answer["headers"] = status, list(headers)
            return lambda data: None

        chunks = self.mock(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        return answer["status"], answer["headers"], body

    @staticmethod
    def _respond(start_response, status: str, headers: list[tuple[str, str]], body: bytes) -> list[bytes]:
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def _wsgi(self, environ: dict[str, Any], start_response) -> list[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/jwks":
            status, headers, body = self._call_mock(environ)
            document = json.loads(body)
            with self._lock:
                document["keys"] = [*document["keys"], *self.keys.jwks()]
            return self._respond(start_response, status, headers, json.dumps(document).encode())
        if path == "/oauth2/authorize" and method == "POST":
            query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
            status, headers, body = self._call_mock(environ)
            location = dict((k.lower(), v) for k, v in headers).get("location")
            code = parse_qs(urlsplit(location).query).get("code", [None])[0] if location else None
            with self._lock:
                self.authorization_requests.append(query)
                if code:
                    self._challenges[code] = query.get("code_challenge", "")
            return self._respond(start_response, status, headers, body)
        if path == "/oauth2/token":
            raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            with self._lock:
                self.token_requests.append(TokenRequest(form, environ.get("HTTP_AUTHORIZATION")))
                challenge = self._challenges.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
            if challenge is None or not verifier or expected != challenge:
                return self._respond(start_response, "400 BAD REQUEST", [("Content-Type", "application/json")],
                                     json.dumps({"error": "invalid_grant",
                                                 "error_description": "PKCE verification failed"}).encode())
            environ["wsgi.input"] = io.BytesIO(raw)
            status, headers, body = self._call_mock(environ)
            rewrite = self.rewrite_id_token
            if rewrite is not None and status.startswith("200"):
                document = json.loads(body)
                claims = jwt.decode(document["id_token"], options={"verify_signature": False})
                document["id_token"] = rewrite(claims)
                body = json.dumps(document).encode()
            return self._respond(start_response, status, headers, body)
        return self.mock(environ, start_response)

"""A hand-written Stripe-compatible HTTP server for the deletion purge's test: the real ``stripe`` SDK talks to
it (``FUNNEL_STRIPE_API_BASE``). It implements the calls the purge makes (reading and cancelling a subscription,
plus customers and checkout sessions), checks the bearer key, and records every request (that test checks the
exact requests). A test gives a customer a subscription with ``add_subscription``. Billing's own tests run
against localstripe (``tests/support/localstripe.py``), a stateful fake with webhooks.
"""
from __future__ import annotations

import json
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl

from tests.support.network import LocalHTTPServer


class StripeServer:
    def __init__(self, api_key: str = "sk_test_funnel") -> None:
        self.api_key = api_key
        self.requests: list[tuple[str, str, dict]] = []
        self.customers: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):  # noqa: N802 (http.server naming)
                length = int(self.headers.get("content-length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                server.requests.append(("POST", self.path, form))
                if self.headers.get("authorization") != f"Bearer {server.api_key}":
                    return self._reply(401, {"error": {"type": "invalid_request_error", "message": "bad key"}})
                if self.path == "/v1/customers":
                    customer = {"id": f"cus_{uuid.uuid4().hex[:14]}", "object": "customer",
                                "email": form.get("email"), "name": form.get("name"),
                                "metadata": {"tenant_id": form.get("metadata[tenant_id]")}}
                    server.customers[customer["id"]] = customer
                    return self._reply(200, customer)
                if self.path == "/v1/checkout/sessions":
                    if form.get("customer") not in server.customers:
                        return self._reply(400, {"error": {"type": "invalid_request_error",
                                                           "message": "No such customer"}})
                    session_id = f"cs_test_{uuid.uuid4().hex[:16]}"
                    return self._reply(200, {"id": session_id, "object": "checkout.session", "mode": form["mode"],
                                             "customer": form["customer"],
                                             "url": f"https://checkout.stripe.test/c/pay/{session_id}",
                                             "success_url": form["success_url"]})
                return self._reply(404, {"error": {"type": "invalid_request_error", "message": "unknown path"}})

            def do_GET(self):  # noqa: N802
                server.requests.append(("GET", self.path, {}))
                if self.headers.get("authorization") != f"Bearer {server.api_key}":
                    return self._reply(401, {"error": {"type": "invalid_request_error", "message": "bad key"}})
                subscription = server.subscriptions.get(self.path.removeprefix("/v1/subscriptions/").split("?")[0])
                if not self.path.startswith("/v1/subscriptions/") or subscription is None:
                    return self._missing("subscription")
                return self._reply(200, subscription)

            def do_DELETE(self):  # noqa: N802
                server.requests.append(("DELETE", self.path, {}))
                if self.headers.get("authorization") != f"Bearer {server.api_key}":
                    return self._reply(401, {"error": {"type": "invalid_request_error", "message": "bad key"}})
                subscription = server.subscriptions.get(self.path.removeprefix("/v1/subscriptions/").split("?")[0])
                # as Stripe: a canceled subscription is "no such subscription" to cancel (reading it still works)
                if not self.path.startswith("/v1/subscriptions/") or subscription is None \
                        or subscription["status"] == "canceled":
                    return self._missing("subscription")
                subscription.update(status="canceled", canceled_at=int(time.time()))
                return self._reply(200, subscription)

            def _missing(self, kind: str) -> None:
                self._reply(404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                            "message": f"No such {kind}: {self.path.rsplit('/', 1)[-1]!r}"}})

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", f"req_{uuid.uuid4().hex[:10]}")
                self.end_headers()
                self.wfile.write(data)

        self._server = LocalHTTPServer(Handler)
        self.url = f"http://127.0.0.1:{self._server.port}"

    def add_subscription(self, customer_id: str, status: str = "active") -> dict:
        """A subscription of ``customer_id``, as a completed Checkout leaves one in Stripe."""
        subscription = {"id": f"sub_{uuid.uuid4().hex[:14]}", "object": "subscription", "customer": customer_id,
                        "status": status, "canceled_at": None}
        self.subscriptions[subscription["id"]] = subscription
        return subscription

    def start(self) -> StripeServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

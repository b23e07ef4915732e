"""localstripe (the pip package, a stateful Stripe fake: customers, plans, subscriptions, invoices, payment
intents, test cards, refunds, signed webhooks) in a subprocess on a free port, for tests that drive the real
``stripe`` SDK through Funnel's API and receive Stripe's webhooks at ``/v1/webhooks/stripe``.

``LocalStripe`` starts ``python -m tests.support.localstripe --port N``, registers the webhook endpoint through
localstripe's ``/_config/webhooks/...`` and stops the process at the end. Run as a module, this file starts
localstripe with the pieces it lacks (the only local stand-in left; shared/funnel/billing/README.md):

- Checkout Sessions and Customer Portal sessions (``POST /v1/checkout/sessions``, ``/v1/billing_portal/sessions``)
  with local URLs; ``POST /_config/funnel/checkout/{id}/complete`` is the customer paying on Checkout's page: the card
  is attached, the subscription created in localstripe, and ``checkout.session.completed`` sent;
- prices: ``GET /v1/prices?lookup_keys[]=`` answers localstripe's plans whose id is the lookup key, and a
  subscription item's ``price`` is taken as its plan (Stripe takes one for the other), and a subscription's
  update keeps the metadata it is given;
- the events localstripe does not send: ``customer.subscription.updated`` after an update (and a trial that
  starts ``trialing``), ``invoice.paid`` beside ``invoice.payment_succeeded``, ``charge.refunded`` after a refund,
  ``customer.subscription.trial_will_end`` on ``POST /_config/funnel/subscriptions/{id}/trial_will_end`` (localstripe
  has no clock); ending a trial (``trial_end=now``) bills the first period;
- invoices' ``hosted_invoice_url`` and ``invoice_pdf``;
- webhooks delivered one at a time in the order they happened, without localstripe's one-second wait, each
  recorded for ``GET /_config/funnel/deliveries`` (tests wait on them); nothing written to /tmp/localstripe.pickle
  (localstripe dumps its whole store there on every write, and parallel test workers would share the file).
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk_test_funnel_localstripe"


class LocalStripe:
    """A localstripe process; ``sdk`` is a real ``stripe`` client of it (a test's own Stripe dashboard)."""

    def __init__(self) -> None:
        with socket.socket() as probe:  # a free port now; the process binds it a moment later
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = API_KEY
        self._process: subprocess.Popen | None = None

    def start(self) -> LocalStripe:
        self._process = subprocess.Popen([sys.executable, "-m", "tests.support.localstripe", "--port", str(self.port)],
                                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.url}/_config/funnel/deliveries", timeout=1)
                return self
            except httpx.TransportError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    err = self._process.stderr.read().decode() if self._process.stderr else ""
                    self.stop()
                    raise RuntimeError(f"localstripe did not start: {err[-2000:]}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        if self._process is not None and self._process.stderr:
            self._process.stderr.close()

    @property
    def sdk(self):
        import stripe

        return stripe.StripeClient(self.api_key, base_addresses={"api": self.url})

    def register_webhook(self, url: str, secret: str) -> None:
        httpx.post(f"{self.url}/_config/webhooks/funnel", data={"url": url, "secret": secret},
                   timeout=10).raise_for_status()

    def _post(self, path: str, data: dict | None = None) -> dict:
        response = httpx.post(f"{self.url}{path}", data=data or {}, timeout=10)
        response.raise_for_status()
        return response.json()

    def complete_checkout(self, session_id: str, payment_method: str = "pm_card_visa") -> dict:
        """The customer pays on Checkout's page: the Checkout Session, now with its subscription."""
        return self._post(f"/_config/funnel/checkout/{session_id}/complete", {"payment_method": payment_method})

    def trial_will_end(self, subscription_id: str) -> None:
        self._post(f"/_config/funnel/subscriptions/{subscription_id}/trial_will_end")

    def deliveries(self) -> list[dict]:
        """Every webhook delivery so far, in order: ``{"id", "type", "object_id", "status"}``."""
        return httpx.get(f"{self.url}/_config/funnel/deliveries", timeout=10).json()["deliveries"]

    def wait_for(self, event_type: str, object_id: str, after: int = 0, timeout: float = 30) -> dict:
        """The first delivery of ``event_type`` about ``object_id`` among the deliveries after the first
        ``after`` ones, once it was answered."""
        def found(deliveries: list[dict]) -> list[dict]:
            return [d for d in deliveries[after:] if d["type"] == event_type and d["object_id"] == object_id
                    and d["status"] is not None]
        return found(wait_until(self.deliveries, lambda ds: bool(found(ds)), timeout,
                                f"localstripe's {event_type} about {object_id}"))[0]


# ---------------------------------------------------------------- the process (python -m tests.support.localstripe)
def _extend(base_url: str) -> Any:
    """localstripe's aiohttp app with the pieces it lacks (see the module's docstring)."""
    import asyncio
    import hashlib
    import hmac
    import json

    import aiohttp
    from aiohttp import web
    from localstripe import resources, webhooks  # server (the app) after the patches: it binds extra_apis
    from localstripe.errors import UserError
    from localstripe.resources import (
        Charge,
        Customer,
        Event,
        Invoice,
        PaymentMethod,
        Plan,
        Refund,
        StripeObject,
        Subscription,
    )

    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None

    deliveries: list[dict] = []
    queue: asyncio.Queue = asyncio.Queue()

    def schedule_webhook(event: Event) -> None:
        queue.put_nowait(event)

    async def deliver() -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                event = await queue.get()
                payload = json.dumps(event._export(), sort_keys=True).encode()
                record = {"id": event.id, "type": event.type, "object_id": event.data["object"].get("id"),
                          "status": None}
                deliveries.append(record)
                for hook in list(webhooks._webhooks.values()):
                    if hook.events is not None and event.type not in hook.events:
                        continue
                    signature = hmac.new(hook.secret.encode(), b"%d.%s" % (event.created, payload),
                                         hashlib.sha256).hexdigest()
                    try:
                        async with session.post(hook.url, data=payload, headers={
                                "Content-Type": "application/json; charset=utf-8",
                                "Stripe-Signature": f"t={event.created},v1={signature}"}) as answer:
                            record["status"] = answer.status
                    except aiohttp.ClientError as exc:
                        record["status"] = f"failed: {exc}"
                if record["status"] is None:
                    record["status"] = "no endpoint"

    resources.schedule_webhook = schedule_webhook

    # --- prices: a plan is a price (its id is the lookup key)
    original_subscription_init = Subscription.__init__

    def as_plans(items: Any) -> Any:
        for item in items or []:
            if isinstance(item, dict) and "price" in item:
                item["plan"] = item.pop("price")
        return items

    def subscription_init(self, *args, items=None, **kwargs):
        original_subscription_init(self, *args, items=as_plans(items), **kwargs)

    Subscription.__init__ = subscription_init

    def subscription_update(cls, id, **data):
        data.pop("proration_behavior", None)  # localstripe prorates as Stripe does by default ("Unused time")
        as_plans(data.get("items"))
        obj = cls._api_retrieve(id)
        trial_ends_now = data.get("trial_end") == "now" and obj.status == "trialing"
        metadata = data.pop("metadata", None) or {}  # localstripe's subscription update ignores its metadata
        obj._update(**data)
        obj.metadata = {key: value for key, value in {**obj.metadata, **metadata}.items() if value != ""}
        if trial_ends_now:
            obj.status = "active"
            obj._create_invoice()
        schedule_webhook(Event("customer.subscription.updated", obj))
        return obj

    Subscription._api_update = classmethod(subscription_update)

    def prices(request: web.Request) -> web.Response:
        keys = server.unflatten_data(request.query).get("lookup_keys") or []
        found = [plan for key in keys if (plan := resources.store.get(f"plan:{key}")) is not None]
        return server.json_response({"object": "list", "url": "/v1/prices", "has_more": False, "data": [
            {"id": plan.id, "object": "price", "lookup_key": plan.id, "active": plan.active, "currency": plan.currency,
             "unit_amount": plan.amount, "nickname": plan.nickname} for plan in found]})

    # --- events localstripe does not send
    original_paid = Invoice._on_payment_success

    def on_payment_success(self):
        original_paid(self)
        schedule_webhook(Event("invoice.paid", self))

    Invoice._on_payment_success = on_payment_success

    original_pay = Invoice._api_pay_invoice.__func__

    def pay_invoice(cls, id):
        """As Stripe: a declined card is invoice.payment_failed (past_due for a live subscription) and a 402;
        localstripe's pay drops the failure."""
        invoice = original_pay(cls, id)
        charge = invoice.charge
        if charge is not None and charge.status == "failed":
            subscription = Subscription._api_retrieve(invoice.subscription) if invoice.subscription else None
            before = subscription.status if subscription else None
            invoice._on_payment_failure_now()
            if subscription is not None and subscription.status != before:
                schedule_webhook(Event("customer.subscription.updated", subscription))
            charge._raise_failure()
        return invoice

    Invoice._api_pay_invoice = classmethod(pay_invoice)
    resources.extra_apis[:] = [(method, url, Invoice._api_pay_invoice if url == "/v1/invoices/{id}/pay" else func)
                               for method, url, func in resources.extra_apis]
    from localstripe import server
    Invoice.hosted_invoice_url = property(lambda self: f"{base_url}/_funnel/invoices/{self.id}")
    Invoice.invoice_pdf = property(lambda self: f"{base_url}/_funnel/invoices/{self.id}.pdf")

    original_refund_init = Refund.__init__

    def refund_init(self, *args, **kwargs):
        original_refund_init(self, *args, **kwargs)
        schedule_webhook(Event("charge.refunded", Charge._api_retrieve(self.charge)))

    Refund.__init__ = refund_init

    # --- Checkout and the Customer Portal
    class CheckoutSession(StripeObject):
        object = "checkout.session"
        _id_prefix = "cs_test_"

        def __init__(self, customer: str, line_items: list, subscription_data: dict | None = None, **fields):
            Customer._api_retrieve(customer)  # 404 for an unknown customer, as Stripe
            price = line_items[0]["price"]
            Plan._api_retrieve(price)
            super().__init__()
            self.customer, self.mode, self.status, self.subscription = customer, fields.get("mode"), "open", None
            self.client_reference_id = fields.get("client_reference_id")
            self.success_url, self.cancel_url = fields.get("success_url"), fields.get("cancel_url")
            self.url = f"{base_url}/_funnel/checkout/{self.id}"
            self.metadata = fields.get("metadata") or {}
            self._price, self._subscription_data = price, subscription_data or {}

    async def create_checkout(request: web.Request) -> web.Response:
        data = await server.get_post_data(request) or {}
        return server.json_response(CheckoutSession(**data)._export())

    async def complete_checkout(request: web.Request) -> web.Response:
        session = CheckoutSession._api_retrieve(request.match_info["id"])
        data = await server.get_post_data(request) or {}
        card = PaymentMethod._api_retrieve(data.get("payment_method") or "pm_card_visa")
        PaymentMethod._api_attach(card.id, customer=session.customer)
        customer = Customer._api_retrieve(session.customer)
        customer.invoice_settings = {**(customer.invoice_settings or {}), "default_payment_method": card.id}
        options = dict(session._subscription_data)
        trial_days = int(options.pop("trial_period_days", 0) or 0)
        subscription = Subscription(customer=session.customer, items=[{"plan": session._price}],
                                    metadata=options.get("metadata"),
                                    trial_end=int(time.time()) + trial_days * 86400 if trial_days else None)
        if trial_days:  # localstripe leaves a trial "incomplete"; Stripe's starts "trialing"
            subscription.status, subscription.trial_start = "trialing", int(time.time())
            schedule_webhook(Event("customer.subscription.updated", subscription))
        session.subscription, session.status = subscription.id, "complete"
        schedule_webhook(Event("checkout.session.completed", session))
        return server.json_response(session._export())

    class PortalSession(StripeObject):
        object = "billing_portal.session"
        _id_prefix = "bps_"

        def __init__(self, customer: str, return_url: str | None = None, **fields):
            Customer._api_retrieve(customer)
            super().__init__()
            self.customer, self.return_url = customer, return_url
            self.url = f"{base_url}/_funnel/portal/{self.id}"

    async def create_portal(request: web.Request) -> web.Response:
        data = await server.get_post_data(request) or {}
        return server.json_response(PortalSession(**data)._export())

    async def trial_will_end(request: web.Request) -> web.Response:
        subscription = Subscription._api_retrieve(request.match_info["id"])
        if subscription.status != "trialing":
            raise UserError(400, "not trialing")
        schedule_webhook(Event("customer.subscription.trial_will_end", subscription))
        return server.json_response({"ok": True})

    def list_deliveries(request: web.Request) -> web.Response:
        return server.json_response({"deliveries": deliveries, "pending": queue.qsize()})

    app = server.app
    app.router.add_get("/v1/prices", prices)
    app.router.add_post("/v1/checkout/sessions", create_checkout)
    app.router.add_post("/v1/billing_portal/sessions", create_portal)
    # /_config/ paths need no API key (localstripe's auth middleware): the "customer" and the test use them
    app.router.add_post("/_config/funnel/checkout/{id}/complete", complete_checkout)
    app.router.add_post("/_config/funnel/subscriptions/{id}/trial_will_end", trial_will_end)
    app.router.add_get("/_config/funnel/deliveries", list_deliveries)

    async def start_delivery(app: web.Application) -> None:
        app["delivery"] = asyncio.ensure_future(deliver())

    app.on_startup.append(start_delivery)
    return app


def main() -> None:
    import argparse

    from aiohttp import web

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    web.run_app(_extend(f"http://127.0.0.1:{port}"), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()

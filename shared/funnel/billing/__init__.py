"""Billing (seed 003; DESIGN.md: billing belongs to the tenant): the Stripe subscription, invoices and the gate
every consuming path calls (``limits``, the area's public module)."""

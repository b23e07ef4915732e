"""funnel-dev: Funnel's local runtime (PostgreSQL, moto and its patches, gateway, pollers, scheduler)
and the dev-only commands `funnel dev` and `funnel form-submit`. Never shipped to Lambda."""

"""Webhook subscriptions: the OMS's events as CloudEvents, POSTed to the URLs ERP and CRM systems subscribe.

A module of notification-service (it owns outbound messaging) with the service's shape: `domain` (pure:
signatures, backoff, which addresses may be called, what a failure does to an endpoint), `tables` and
`repository` (PostgreSQL), `sender` (the delivery loop and its HTTP client), `handlers` (the consumer of
every events topic, its own group `notification-service-webhooks`), `routes` (the ops API) and
`composition` (wired into the service's composition root). See the service README, "Webhooks".
"""

"""Wiring of the webhook module into notification-service's composition root (`main.build`)."""

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from notification_service.webhooks.handlers import WantedTypes, WebhookHandlers
from notification_service.webhooks.http_client import Resolver, system_resolver, webhook_client
from notification_service.webhooks.repository import WebhookRepository
from notification_service.webhooks.routes import webhook_router
from notification_service.webhooks.sender import WebhookSender
from notification_service.webhooks.settings import WebhookSettings
from notification_service.webhooks.tables import metadata
from oms_events.routes import EVENTS_TOPICS, WEBHOOKS_GROUP
from oms_runtime.host import ConsumerSpec, ServiceHost
from oms_runtime.http_api import ApiKeyAuthenticator
from oms_runtime.periodic import PeriodicTask

__all__ = ["metadata", "wire_webhooks"]


def wire_webhooks(
    host: ServiceHost,
    app: FastAPI,
    auth: ApiKeyAuthenticator,
    settings: WebhookSettings,
    clock: Callable[[], datetime],
    resolver: Resolver = system_resolver,
) -> WebhookSender:
    """The consumer (its own group), the sender, the subscription cache and the API routes."""
    repository = WebhookRepository()
    client = webhook_client(
        timeout_s=settings.webhook_timeout_s,
        concurrency=settings.webhook_concurrency,
        allow_private=settings.webhook_allow_private_targets,
        resolver=resolver,
    )
    wanted = WantedTypes(host.db, repository)
    sender = WebhookSender(
        host.db,
        repository,
        client,
        settings.webhook_policy(),
        clock=clock,
        lease_s=settings.webhook_lease_s,
        concurrency=settings.webhook_concurrency,
        poll_interval_s=settings.webhook_poll_interval_s,
        any_subscriptions=wanted.any,
    )
    handlers = WebhookHandlers(repository, clock=clock, wake=sender.wake)
    host.add_consumer(
        ConsumerSpec(
            WEBHOOKS_GROUP,
            EVENTS_TOPICS,
            handlers.handler_map(wanted),
            # Up to WEBHOOK_FETCH_MAX_WAIT_MS late, in batches of many records: one poll and one offset
            # commit per batch instead of per record or two (most of its cost with no subscriptions).
            fetch_min_bytes=settings.webhook_fetch_min_bytes,
            fetch_max_wait_ms=settings.webhook_fetch_max_wait_ms,
        )
    )
    refresher = PeriodicTask(
        "webhook-subscriptions", wanted.refresh, interval_s=settings.webhook_subscription_refresh_s
    )
    app.include_router(
        webhook_router(
            host.db,
            repository,
            auth,
            clock,
            resolver,
            allow_private=settings.webhook_allow_private_targets,
            subscriptions_changed=wanted.refresh,
            wake=sender.wake,
        )
    )

    async def start() -> None:
        # Before the consumers start (the host runs start hooks first): the filter knows the subscriptions.
        await wanted.refresh()
        await refresher.start()
        await sender.start()

    async def stop() -> None:
        await sender.stop()
        await refresher.stop()
        await sender.close()

    host.on_start(start)
    host.on_stop(stop)
    return sender

"""Composition root of order-service: the one place where its parts are wired together."""

from datetime import timedelta

from pydantic import Field, SecretStr
from redis.asyncio import Redis

from oms_runtime.eventstore import EventStore
from oms_runtime.host import ServiceHost, run_service
from oms_runtime.logging import configure_logging
from oms_runtime.settings import ServiceSettings
from order_service.adapters.idempotency import IdempotencyStore
from order_service.adapters.order_repository import OrderRepository
from order_service.adapters.projection import projection_metadata
from order_service.adapters.read_models import read_models
from order_service.adapters.tables import metadata
from order_service.entrypoints.auth import API_KEYS_ADAPTER, Authenticator
from order_service.entrypoints.consumers import consumers
from order_service.entrypoints.http import create_app
from order_service.entrypoints.query_routes import query_router
from order_service.entrypoints.report_routes import report_router
from order_service.entrypoints.return_routes import return_router
from order_service.handlers import (
    SERVICE,
    DeadlineSweeper,
    OrderCommands,
    OrderPlacement,
    OrderQueries,
    OrderSaga,
)
from order_service.queries import OrderSearch
from order_service.sales_report import SalesReports


class OrderSettings(ServiceSettings):
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Longer than the worst queueing delay expected under load: a re-send to a participant that is
    # merely behind adds work to the very queue that is late (see docs/benchmarks.md).
    saga_step_timeout_s: float = Field(default=120.0, gt=0, description="Wait for a reply before re-sending")
    saga_max_attempts: int = Field(default=3, ge=1, description="Sends of one command before the saga stalls")
    saga_sweep_interval_s: float = Field(default=1.0, gt=0)
    idempotency_ttl_s: int = Field(default=24 * 3600, gt=0)
    placement_deadline_s: float = Field(
        default=3.0,
        gt=0,
        description="POST /orders answers within this time: past it, 503 with Retry-After (the outcome is not "
        "known yet; a retry with the same Idempotency-Key or reference gets the order, placed once)",
    )
    api_keys: str = Field(default="[]", description="JSON list of {name, key, role: ops|channel, channel}")
    hold_above_minor: int = Field(
        default=500_000,
        ge=0,
        description="Risk rule: an order whose total (minor units) is above this goes on hold when its stock "
        "is reserved, until an operator releases it; 0 disables the rule",
    )
    tracking_token_secret: SecretStr = Field(
        default=SecretStr(""), description="HMAC secret of the customers' tracking tokens (required)"
    )


def authenticator(settings: OrderSettings) -> Authenticator:
    secret = settings.tracking_token_secret.get_secret_value()
    if len(secret) < 16:
        raise ValueError("TRACKING_TOKEN_SECRET must be set (16 characters or more)")
    return Authenticator(API_KEYS_ADAPTER.validate_json(settings.api_keys), secret)


def build(settings: OrderSettings) -> ServiceHost:
    host = ServiceHost(SERVICE, settings, metadata=[metadata, projection_metadata])
    step_timeout = timedelta(seconds=settings.saga_step_timeout_s)
    models = read_models()
    repository = OrderRepository(EventStore(), host.registry, step_timeout, models.summaries, models.others)
    for spec in consumers(OrderSaga(repository, settings.hold_above_minor), group_id=SERVICE):
        host.add_consumer(spec)

    redis = Redis.from_url(settings.redis_url)
    placement = OrderPlacement(host.db, repository, host.registry)
    queries = OrderQueries(host.db, repository, host.registry)
    commands = OrderCommands(host.db, repository, host.registry)
    auth = authenticator(settings)
    app = create_app(
        placement,
        queries,
        commands,
        IdempotencyStore(redis, settings.idempotency_ttl_s),
        auth,
        routers=[
            query_router(OrderSearch(host.db), auth),
            return_router(commands, queries, auth),
            report_router(SalesReports(host.db), auth),
        ],
        max_body_bytes=settings.http_max_body_bytes,
        placement_deadline_s=settings.placement_deadline_s,
    )
    host.serve_http(app, settings.http_host, settings.http_port, ops_auth=auth)

    sweeper = DeadlineSweeper(
        host.db,
        repository,
        host.registry,
        step_timeout=step_timeout,
        max_attempts=settings.saga_max_attempts,
        interval_s=settings.saga_sweep_interval_s,
    )
    host.on_start(sweeper.start)
    host.on_stop(sweeper.stop)
    host.on_stop(redis.aclose)
    return host


async def serve(settings: OrderSettings) -> None:
    await build(settings).run_until_signalled()


def run() -> None:
    settings = OrderSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    run_service(serve(settings), settings.event_loop)


if __name__ == "__main__":
    run()

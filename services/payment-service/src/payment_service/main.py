"""Composition root of payment-service: the one place where its parts are wired together."""

import json
from typing import Literal

import httpx
from pydantic import Field, SecretStr, field_validator
from redis.asyncio import Redis

from oms_runtime.eventstore import EventStore
from oms_runtime.host import ServiceHost, run_service
from oms_runtime.http_api import ApiKeyAuthenticator
from oms_runtime.logging import configure_logging
from oms_runtime.settings import ServiceSettings
from payment_service.adapters.http_gateway import StripeLikeGateway
from payment_service.adapters.payment_store import PaymentStore
from payment_service.adapters.retrying_gateway import RetryingGateway
from payment_service.adapters.simulated_gateway import SimulatedGateway
from payment_service.adapters.tables import gateway_metadata, metadata
from payment_service.adapters.velocity import RedisVelocityCounter
from payment_service.domain.gateway import PaymentGateway
from payment_service.domain.risk import Action, RiskRules
from payment_service.entrypoints.consumers import consumers
from payment_service.entrypoints.http import create_app
from payment_service.handlers import PaymentHandlers
from payment_service.queries import PaymentQueries

SERVICE = "payment-service"


class PaymentSettings(ServiceSettings):
    http_host: str = "127.0.0.1"
    http_port: int = 8002
    api_keys: str = Field(default="[]", description="JSON list of {name, key, role, channel}; the API is for ops")
    payment_gateway: Literal["simulated", "stripe_like"] = Field(
        default="simulated", description="simulated (test tokens, local ledger) or stripe_like (a provider's HTTP API)"
    )
    gateway_base_url: str | None = Field(default=None, description="stripe_like: the provider's API base URL")
    gateway_api_key: SecretStr | None = Field(default=None, description="stripe_like: the provider's secret key")
    simulated_gateway_slow_s: float = Field(default=2.0, ge=0, description="How long tok_slow's answers take")
    gateway_timeout_s: float = Field(default=10.0, gt=0, description="A gateway call taking longer is retried")
    gateway_attempts: int = Field(default=4, ge=1, description="Tries of one gateway call on transient errors")
    gateway_backoff_s: float = Field(default=0.2, gt=0, description="First retry delay; doubles each time")
    risk_review_above_minor: dict[str, int] = Field(
        default_factory=dict, description='Per currency, JSON: {"EUR": 500000}: review a payment above this'
    )
    risk_decline_above_minor: dict[str, int] = Field(
        default_factory=dict, description='Per currency, JSON: {"EUR": 2000000}: decline a payment above this'
    )
    risk_velocity_max: int = Field(default=0, ge=0, description="Payment attempts per customer in the window; 0: off")
    risk_velocity_window_s: int = Field(default=3600, gt=0)
    risk_velocity_action: Action = "review"
    risk_country_mismatch: Action = Field(default="review", description="Billing country != shipping country")

    @field_validator("risk_review_above_minor", "risk_decline_above_minor", mode="before")
    @classmethod
    def _json(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    def simulations(self) -> list[str]:
        if self.payment_gateway == "simulated":
            return ["PAYMENT_GATEWAY=simulated takes no money (test tokens, a local ledger)"]
        return []

    def risk_rules(self) -> RiskRules:
        return RiskRules(
            review_above_minor=self.risk_review_above_minor,
            decline_above_minor=self.risk_decline_above_minor,
            velocity_max=self.risk_velocity_max,
            velocity_window_s=self.risk_velocity_window_s,
            velocity_action=self.risk_velocity_action,
            country_mismatch=self.risk_country_mismatch,
        )


def gateway_for(settings: PaymentSettings, host: ServiceHost) -> PaymentGateway:
    """The configured gateway adapter (without retries)."""
    if settings.payment_gateway == "stripe_like":
        url, key = settings.gateway_base_url, settings.gateway_api_key
        if not url or key is None or not key.get_secret_value():
            raise ValueError("PAYMENT_GATEWAY=stripe_like needs GATEWAY_BASE_URL and GATEWAY_API_KEY")
        # The retry wrapper enforces GATEWAY_TIMEOUT_S; the client's own timeout is only a backstop.
        client = httpx.AsyncClient(base_url=url, timeout=settings.gateway_timeout_s + 5)
        host.on_stop(client.aclose)
        return StripeLikeGateway(client, key.get_secret_value())
    return SimulatedGateway(host.db, slow_s=settings.simulated_gateway_slow_s)


def build(settings: PaymentSettings) -> ServiceHost:
    host = ServiceHost(SERVICE, settings, metadata=[metadata, gateway_metadata])
    gateway = RetryingGateway(
        gateway_for(settings, host),
        attempts=settings.gateway_attempts,
        backoff_s=settings.gateway_backoff_s,
        timeout_s=settings.gateway_timeout_s,
    )
    redis = Redis.from_url(settings.redis_url)
    store = EventStore()
    handlers = PaymentHandlers(
        gateway, PaymentStore(), risk_rules=settings.risk_rules(), velocity=RedisVelocityCounter(redis)
    )
    for spec in consumers(handlers, group_id=SERVICE):
        host.add_consumer(spec)
    auth = ApiKeyAuthenticator.from_json(settings.api_keys)
    app = create_app(
        PaymentQueries(host.db, store, host.registry),
        auth,
        max_body_bytes=settings.http_max_body_bytes,
    )
    host.serve_http(app, settings.http_host, settings.http_port, ops_auth=auth)
    host.on_stop(redis.aclose)
    return host


async def serve(settings: PaymentSettings) -> None:
    await build(settings).run_until_signalled()


def run() -> None:
    settings = PaymentSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    run_service(serve(settings), settings.event_loop)


if __name__ == "__main__":
    run()

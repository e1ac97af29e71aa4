"""The webhook settings of notification-service (a part of its settings class)."""

from datetime import timedelta

from pydantic import BaseModel, Field

from notification_service.webhooks.domain import RetryPolicy


class WebhookSettings(BaseModel):
    webhook_allow_private_targets: bool = Field(
        default=False,
        description="Allow private, loopback and link-local targets and plain http (local development and tests)",
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="Per delivery request (connect at most 5 s)")
    webhook_concurrency: int = Field(default=8, ge=1, description="Deliveries sent at the same time per replica")
    webhook_lease_s: float = Field(
        default=60.0, gt=0, description="An attempt not recorded by then is made again (keep it above the timeout)"
    )
    webhook_poll_interval_s: float = Field(default=1.0, gt=0, description="How often an idle sender looks for retries")
    webhook_retry_base_s: float = Field(default=5.0, gt=0, description="Backoff: up to base * 2^(attempt-1), jittered")
    webhook_retry_max_s: float = Field(default=3600.0, gt=0, description="The longest wait between two attempts")
    webhook_retry_for_s: float = Field(
        default=86400.0, gt=0, description="A delivery failing this long after its first failure is given up"
    )
    webhook_disable_after_s: float = Field(
        default=21600.0, gt=0, description="An endpoint failing with no success for this long is disabled"
    )
    webhook_fetch_min_bytes: int = Field(
        default=65536, ge=1, description="The webhook consumer waits for this much data (or the max wait) per fetch"
    )
    webhook_fetch_max_wait_ms: int = Field(
        default=500, ge=0, le=5000, description="How long a webhook consumer's fetch waits for more records"
    )
    webhook_subscription_refresh_s: float = Field(
        default=5.0, gt=0, description="How often a replica rereads which event types are subscribed"
    )

    def webhook_policy(self) -> RetryPolicy:
        return RetryPolicy(
            base_s=self.webhook_retry_base_s,
            max_s=self.webhook_retry_max_s,
            retry_for=timedelta(seconds=self.webhook_retry_for_s),
            disable_after=timedelta(seconds=self.webhook_disable_after_s),
        )

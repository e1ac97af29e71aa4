"""Composition root of notification-service: the one place where its parts are wired together."""

from pydantic import Field, SecretStr

from notification_service.adapters.http_sms import HttpSmsSender, SmsProviderConfig
from notification_service.adapters.repository import NotificationRepository
from notification_service.adapters.smtp import SmtpConfig, SmtpEmailSender
from notification_service.adapters.tables import metadata
from notification_service.adapters.templates import TemplateRenderer
from notification_service.dispatcher import Dispatcher
from notification_service.entrypoints.consumers import consumers
from notification_service.entrypoints.http import create_app
from notification_service.handlers import NotificationHandlers, utc_now
from notification_service.webhooks import composition as webhooks
from notification_service.webhooks.settings import WebhookSettings
from oms_runtime.host import ServiceHost, run_service
from oms_runtime.http_api import ApiKeyAuthenticator
from oms_runtime.logging import configure_logging
from oms_runtime.settings import ServiceSettings

SERVICE = "notification-service"


class NotificationSettings(ServiceSettings, WebhookSettings):
    """Defaults match `deploy/local/mailsink.py` and `deploy/local/smssink.py`."""

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8004, ge=1, le=65535)
    api_keys: str = Field(default="[]", description="JSON list of {name, key, role, channel}; ops keys use the API")

    sms_provider_url: str = Field(default="http://127.0.0.1:1026", description="Base URL of the SMS provider API")
    sms_api_key: SecretStr | None = None
    sms_sender_id: str = Field(default="OMS", min_length=1, max_length=15)
    sms_timeout_s: float = Field(default=10.0, gt=0)
    sms_status_callback_url: str | None = Field(
        default=None, description="This service's /webhooks/sms/status as the provider reaches it; unset: no reports"
    )
    sms_webhook_token: SecretStr | None = Field(default=None, description="What the provider sends in X-Webhook-Token")

    notify_max_attempts: int = Field(default=6, ge=1, description="Sends of one message before it fails for good")
    notify_retry_base_s: float = Field(default=5.0, gt=0, description="First retry delay; doubles per attempt")
    notify_retry_max_s: float = Field(default=900.0, gt=0)
    notify_lease_s: float = Field(default=120.0, gt=0, description="After this, an unrecorded attempt is claimed again")
    notify_poll_interval_s: float = Field(default=0.5, gt=0)
    notify_gather_s: float = Field(
        default=0.2, ge=0, description="How long a woken dispatcher waits for more messages before a round"
    )
    notify_concurrency: int = Field(default=8, ge=1, description="Orders whose messages are sent at the same time")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_from: str = Field(default="orders@oms.example", pattern=r"^[^@\s]+@[^@\s]+$")
    smtp_from_name: str = "OMS Orders"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool | None = Field(
        default=None, description="unset: STARTTLS when the server offers it; true: required; false: never"
    )
    smtp_timeout_s: float = Field(default=10.0, gt=0)

    def smtp_config(self) -> SmtpConfig:
        return SmtpConfig(
            host=self.smtp_host,
            port=self.smtp_port,
            from_address=self.smtp_from,
            from_name=self.smtp_from_name,
            username=self.smtp_username or None,
            password=self.smtp_password.get_secret_value() if self.smtp_password else None,
            start_tls=self.smtp_starttls,
            timeout_s=self.smtp_timeout_s,
            # One open connection per message in flight: the dispatcher sends up to that many at once.
            pool_size=self.notify_concurrency,
        )

    def sms_config(self) -> SmsProviderConfig:
        return SmsProviderConfig(
            base_url=self.sms_provider_url,
            api_key=self.sms_api_key.get_secret_value() if self.sms_api_key else None,
            sender_id=self.sms_sender_id,
            timeout_s=self.sms_timeout_s,
            status_callback_url=self.sms_status_callback_url or None,
        )

    @property
    def message_id_domain(self) -> str:
        return self.smtp_from.rpartition("@")[2]


def build(settings: NotificationSettings) -> ServiceHost:
    host = ServiceHost(SERVICE, settings, metadata=[metadata, webhooks.metadata])
    repository = NotificationRepository()
    sms = HttpSmsSender(settings.sms_config())
    email = SmtpEmailSender(settings.smtp_config())
    dispatcher = Dispatcher(
        host.db,
        repository,
        TemplateRenderer(),
        email,
        sms,
        host.registry,
        producer_name=SERVICE,
        message_id_domain=settings.message_id_domain,
        max_attempts=settings.notify_max_attempts,
        retry_base_s=settings.notify_retry_base_s,
        retry_max_s=settings.notify_retry_max_s,
        lease_s=settings.notify_lease_s,
        poll_interval_s=settings.notify_poll_interval_s,
        gather_s=settings.notify_gather_s,
        concurrency=settings.notify_concurrency,
    )
    handlers = NotificationHandlers(wake=dispatcher.wake)
    for spec in consumers(handlers, group_id=SERVICE):
        host.add_consumer(spec)
    auth = ApiKeyAuthenticator.from_json(settings.api_keys)
    app = create_app(
        host.db,
        repository,
        auth,
        utc_now,
        sms_reports=dispatcher.record_sms_report,
        resend=dispatcher.resend,
        webhook_token=settings.sms_webhook_token.get_secret_value() if settings.sms_webhook_token else None,
        max_body_bytes=settings.http_max_body_bytes,
    )
    webhooks.wire_webhooks(host, app, auth, settings, utc_now)
    host.serve_http(app, settings.http_host, settings.http_port, ops_auth=auth)
    host.on_start(dispatcher.start)
    # Stop hooks run last first: the dispatcher stops before the connections it sends on are closed.
    host.on_stop(sms.close)
    host.on_stop(email.close)
    host.on_stop(dispatcher.stop)
    return host


async def serve(settings: NotificationSettings) -> None:
    await build(settings).run_until_signalled()


def run() -> None:
    settings = NotificationSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    run_service(serve(settings), settings.event_loop)


if __name__ == "__main__":
    run()

"""Composition root of notification-service: the one place where its parts are wired together."""

import asyncio

from pydantic import Field, SecretStr

from notification_service.adapters.repository import NotificationRepository
from notification_service.adapters.smtp import SmtpConfig, SmtpEmailSender
from notification_service.adapters.tables import metadata
from notification_service.adapters.templates import TemplateRenderer
from notification_service.entrypoints.consumers import consumers
from notification_service.handlers import NotificationHandlers
from oms_runtime.host import ServiceHost
from oms_runtime.logging import configure_logging
from oms_runtime.settings import ServiceSettings

SERVICE = "notification-service"


class NotificationSettings(ServiceSettings):
    """Defaults match `deploy/local/mailsink.py`."""

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
        )

    @property
    def message_id_domain(self) -> str:
        return self.smtp_from.rpartition("@")[2]


def build(settings: NotificationSettings) -> ServiceHost:
    host = ServiceHost(SERVICE, settings, metadata=[metadata])
    handlers = NotificationHandlers(
        NotificationRepository(),
        TemplateRenderer(),
        SmtpEmailSender(settings.smtp_config()),
        message_id_domain=settings.message_id_domain,
    )
    for spec in consumers(handlers, group_id=SERVICE):
        host.add_consumer(spec)
    return host


async def serve(settings: NotificationSettings) -> None:
    await build(settings).run_until_signalled()


def run() -> None:
    settings = NotificationSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    run()

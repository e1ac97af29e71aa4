"""The console's settings, from the environment (defaults: the services of `make run` on 127.0.0.1)."""

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", env_file=None)

    console_host: str = Field(default="127.0.0.1", description="Address the console listens on")
    console_port: int = Field(default=8080, ge=0, le=65535)
    order_service_url: str = "http://127.0.0.1:8000"
    inventory_service_url: str = "http://127.0.0.1:8001"
    payment_service_url: str = "http://127.0.0.1:8002"
    fulfilment_service_url: str = "http://127.0.0.1:8003"
    notification_service_url: str = "http://127.0.0.1:8004"
    console_session_secret: SecretStr | None = Field(
        default=None,
        description="Signs the session cookie; unset: a random secret per process (sessions end on restart)",
    )
    console_session_ttl_s: float = Field(default=8 * 3600, gt=0, description="A session ends this long after sign-in")
    console_idle_timeout_s: float = Field(default=3600, gt=0, description="... or after this long without a request")
    console_secure_cookie: bool = Field(default=False, description="Mark the cookie Secure (set behind HTTPS)")
    console_request_timeout_s: float = Field(default=10.0, gt=0, description="Per call to a service")
    log_level: str = "INFO"
    log_format: str = Field(default="auto", description="json, console, or auto (console on a terminal)")

    def service_urls(self) -> dict[str, str]:
        return {
            "order-service": self.order_service_url,
            "inventory-service": self.inventory_service_url,
            "payment-service": self.payment_service_url,
            "fulfilment-service": self.fulfilment_service_url,
            "notification-service": self.notification_service_url,
        }

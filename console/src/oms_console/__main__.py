"""`python -m oms_console` (or `oms-console`): serves the console on CONSOLE_HOST:CONSOLE_PORT."""

import uvicorn

from oms_console.app import create_app
from oms_console.settings import ConsoleSettings
from oms_runtime.logging import configure_logging, get_logger


def main() -> None:
    settings = ConsoleSettings()
    configure_logging("oms-console", settings.log_level, settings.log_format)
    get_logger(__name__).info(
        "console started", http=f"{settings.console_host}:{settings.console_port}", services=settings.service_urls()
    )
    uvicorn.run(
        create_app(settings),
        host=settings.console_host,
        port=settings.console_port,
        log_level="warning",
        log_config=None,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()

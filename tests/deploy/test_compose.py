"""docker-compose.yml runs the whole merged system: every setting a service cannot do without is set for it,
every service is probed on /health/ready and published on its local port, and the SMS and SMTP sinks are
wired in. `docker compose config` validates the file where the compose plugin is installed."""

import functools
import importlib.util
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from oms_events.topics import SERVICES
from oms_runtime.host import DEFAULT_HTTP_PORTS

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"


@functools.cache
def _settings_class(service: str) -> Any:
    # The manifests generator already knows how to find a service's settings class.
    spec = importlib.util.spec_from_file_location("oms_k8s_manifests_for_compose", REPO / "deploy/k8s/manifests.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.settings_class(service)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def needs_a_value_in_a_container(field: FieldInfo) -> bool:
    """No default, or one that does not work in a container: an empty secret or key list (the service
    refuses to start or answers nobody), or an address on the loopback interface (the container itself)."""
    if field.is_required():
        return True
    default = field.get_default(call_default_factory=True)
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if not isinstance(default, str):
        return False
    return default in ("", "[]") or "127.0.0.1" in default or "localhost" in default


def test_the_rule_notices_what_a_container_cannot_use() -> None:
    settings = _settings_class("order-service").model_fields
    assert needs_a_value_in_a_container(settings["tracking_token_secret"])
    assert needs_a_value_in_a_container(settings["api_keys"])
    assert needs_a_value_in_a_container(settings["kafka_bootstrap_servers"])
    assert not needs_a_value_in_a_container(settings["saga_max_attempts"])
    assert not needs_a_value_in_a_container(settings["otel_exporter_otlp_endpoint"])


@pytest.mark.parametrize("service", SERVICES)
def test_every_setting_a_service_cannot_do_without_is_set_and_nothing_it_does_not_read(
    compose: dict[str, Any], service: str
) -> None:
    assert service in compose, f"docker-compose.yml has no {service}"
    fields = _settings_class(service).model_fields
    environment = _environment(compose[service])
    needed = {name.upper() for name, field in fields.items() if needs_a_value_in_a_container(field)}
    missing = needed - set(environment)
    assert not missing, f"docker-compose.yml does not set what {service} needs: {sorted(missing)}"
    unknown = {key for key in environment if key.lower() not in fields}
    assert not unknown, f"docker-compose.yml sets what {service} does not read: {sorted(unknown)}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_is_built_probed_on_readiness_and_published_on_its_port(
    compose: dict[str, Any], service: str
) -> None:
    spec = compose[service]
    assert spec["build"]["args"]["SERVICE"] == service
    assert (REPO / spec["build"]["dockerfile"]).is_file()
    assert "/health/ready" in " ".join(spec["healthcheck"]["test"])
    environment = _environment(spec)
    port = DEFAULT_HTTP_PORTS[service]
    assert environment["HTTP_HOST"] == "0.0.0.0", "a service listening on loopback is unreachable in a container"
    assert environment["HTTP_PORT"] == str(port)
    assert f"127.0.0.1:{port}:{port}" in spec["ports"]
    for dependency in ("kafka", "postgres", "redis"):
        assert spec["depends_on"][dependency]["condition"] == "service_healthy"


def test_notifications_go_to_the_local_smtp_and_sms_sinks(compose: dict[str, Any]) -> None:
    environment = _environment(compose["notification-service"])
    assert environment["SMTP_HOST"] in compose
    sink = compose["smssink"]
    assert "deploy/local/smssink.py" in sink["command"]
    assert (REPO / "deploy/local/smssink.py").is_file()
    port = sink["command"][sink["command"].index("--port") + 1]
    assert environment["SMS_PROVIDER_URL"] == f"http://smssink:{port}"
    token = sink["command"][sink["command"].index("--webhook-token") + 1]
    assert environment["SMS_WEBHOOK_TOKEN"] == token, "the sink's delivery reports would be refused"
    assert environment["SMS_STATUS_CALLBACK_URL"].startswith(f"http://notification-service:{environment['HTTP_PORT']}/")
    assert "smssink" in compose["notification-service"]["depends_on"]
    # The sink runs from notification-service's image, which must contain it.
    assert "deploy/local/smssink.py" in (REPO / sink["build"]["dockerfile"]).read_text()


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is not None:
        plugin = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
        if plugin.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone is not None:
        version = subprocess.run([standalone, "version", "--short"], capture_output=True, text=True, check=False)
        if version.returncode == 0 and version.stdout.strip().startswith("2."):
            return [standalone]
    return None


def test_docker_compose_accepts_the_file() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("the Docker Compose v2 plugin (`docker compose`) is not installed; it validates offline, no engine")
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "-q"], capture_output=True, text=True, check=False, cwd=REPO
    )
    assert result.returncode == 0, result.stderr

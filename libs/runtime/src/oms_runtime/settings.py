"""Settings from the environment. Every service reads the same names."""

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from oms_events.topics import DEFAULT_PARTITIONS
from oms_runtime.kafka_connection import KafkaClientSettings


class ServiceSettings(KafkaClientSettings):
    """Defaults match `deploy/local/infra.sh`, so a developer needs no environment at all. The Kafka
    connection settings (bootstrap servers, TLS, SASL) are `KafkaClientSettings`'s."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", env_file=None)

    kafka_topic_partitions: int = Field(
        default=DEFAULT_PARTITIONS,
        ge=1,
        description="Partitions of every keyed topic the service creates (not the one-partition dead-letter "
        "topics): at most this many replicas of a service share its work. Raised on an existing topic that has "
        "fewer, never lowered",
    )
    kafka_create_topics: bool = Field(
        default=True,
        description="Create missing topics (and raise their partitions) at start. On for local runs; off where "
        "an operator owns the topics (Strimzi KafkaTopics in Kubernetes), so the services never race it with "
        "a replication factor of their own and need no Create ACL",
    )
    database_url: str = Field(default="postgresql+asyncpg://oms:oms@127.0.0.1:5433/oms")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0")

    log_level: str = "INFO"
    log_format: str = Field(default="auto", description="json, console, or auto (console on a terminal)")
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop",
        description="The event loop a service runs on: uvloop (libuv, less CPU per socket write and wake-up) or "
        "the standard library's asyncio loop",
    )

    consumer_max_attempts: int = Field(default=5, ge=1, description="Handler attempts before dead-lettering")
    consumer_retry_backoff_s: float = Field(default=0.2, gt=0)
    consumer_batch_size: int = Field(default=100, ge=1, description="Records per poll; offsets commit per batch")
    kafka_fetch_min_bytes: int = Field(
        default=1,
        ge=1,
        description="A consumer's fetch waits for this many bytes (or KAFKA_FETCH_MAX_WAIT_MS): fewer, bigger "
        "batches under load, each a transaction and an offset commit",
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=500, ge=0, description="Longest a fetch waits for KAFKA_FETCH_MIN_BYTES"
    )
    kafka_linger_ms: int = Field(
        default=2, ge=0, description="How long the producer gathers records into one produce request"
    )
    outbox_sweep_interval_s: float = Field(
        default=5.0, gt=0, description="How often the relay looks for committed rows no process published"
    )
    outbox_sweep_after_s: float = Field(
        default=10.0, gt=0, description="Age at which an unpublished outbox row counts as left behind"
    )
    outbox_batch_size: int = Field(default=500, ge=1)
    inbox_retention_s: float = Field(
        default=8 * 24 * 3600,
        gt=0,
        description="Inbox rows (message ids already processed) older than this are pruned; keep it above the "
        "topics' retention (7 days), so a record still on a topic is still recognised",
    )
    outbox_retention_s: float = Field(
        default=24 * 3600, gt=0, description="Published outbox rows older than this are pruned"
    )
    retention_interval_s: float = Field(default=600.0, gt=0, description="How often old rows are pruned")
    db_pool_size: int = Field(default=10, ge=1, description="Connections the service keeps open to PostgreSQL")
    db_pool_overflow: int = Field(
        default=0,
        ge=0,
        description="Extra connections opened above DB_POOL_SIZE in a burst and closed again when returned (each a "
        "new PostgreSQL backend); 0: callers wait for a pooled one instead",
    )
    db_connect_timeout_s: float = Field(default=5.0, gt=0, description="Longest wait for a new database connection")
    db_pool_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest wait for a free connection of the pool before the call fails"
    )

    http_host: str = Field(default="127.0.0.1", description="Address of the HTTP server (API, probes, metrics)")
    http_port: int | None = Field(
        default=None, ge=0, le=65535, description="HTTP port; unset: the service's local default (8000-8004)"
    )
    http_max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest request body the HTTP API reads (bytes); a larger one is refused with 413",
    )
    otel_traces_exporter: str = Field(
        default="none", description="otlp (OTLP/HTTP), console or none: where the services' spans go"
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP base URL, e.g. http://otel-collector:4318 (spans go to /v1/traces)"
    )
    readiness_timeout_s: float = Field(default=2.0, gt=0, description="Per dependency, in /health/ready")
    oms_environment: Literal["development", "production"] = Field(
        default="development",
        description="production: the service refuses to start with a simulated provider (simulations()) unless "
        "ALLOW_SIMULATED_PROVIDERS=true",
    )
    allow_simulated_providers: bool = Field(
        default=False,
        description="With OMS_ENVIRONMENT=production: start even with simulated providers (a staging cluster, a "
        "load test); each start logs what is simulated",
    )
    shutdown_grace_s: float = Field(
        default=25.0,
        gt=0,
        description="After SIGTERM: time to finish in-flight messages, publish the outbox and exit; keep it "
        "below the pod's terminationGracePeriodSeconds",
    )

    def simulations(self) -> list[str]:
        """What this service's settings make it pretend (a simulated payment gateway, made-up shipments): each
        a sentence naming the setting. A service with simulated parts says so by overriding this."""
        return []

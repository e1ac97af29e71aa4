"""How every Kafka client of the system reaches the broker: one settings object, turned into client
arguments here and nowhere else.

The services' FastStream broker takes a `faststream.security.BaseSecurity` (`security=`); aiokafka's
producers, consumers and admin clients take `security_protocol`, `sasl_*` and `ssl_context`. Both come from
the same `BaseSecurity`, and FastStream's own `parse_security` turns it into aiokafka's arguments, so the
broker and every plain aiokafka client (the outbox relay's producer, the lag probe, the topic admin, the
dead-letter tools, the CLI, the bench and the tests) connect the same way: a client that forgot the
credentials cannot exist by construction, it would have to bypass this module.

Settings (the environment, like every other setting): KAFKA_SECURITY_PROTOCOL (PLAINTEXT, SSL,
SASL_PLAINTEXT, SASL_SSL), KAFKA_SASL_MECHANISM (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN), KAFKA_SASL_USERNAME,
KAFKA_SASL_PASSWORD, KAFKA_SSL_CAFILE (PEM; unset: the system's CAs), KAFKA_SSL_CERTFILE and
KAFKA_SSL_KEYFILE (PEM, the client certificate for mTLS), KAFKA_SSL_KEY_PASSWORD.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

from aiokafka.helpers import create_ssl_context
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

_SASL = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256, "PLAIN": SASLPlaintext}


class KafkaSettingsError(ValueError):
    """The Kafka security settings contradict each other (e.g. SASL without a password)."""


@dataclass(frozen=True)
class KafkaConnection:
    """Where the broker is and how to authenticate to it; `client_args()` for aiokafka, `security` for
    FastStream. Without `security`, PLAINTEXT."""

    bootstrap_servers: str
    security: BaseSecurity | None = None

    def client_args(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient)."""
        return {"bootstrap_servers": self.bootstrap_servers, **parse_security(self.security)}

    @property
    def protocol(self) -> str:
        args = parse_security(self.security)
        protocol: str = args.get("security_protocol", "PLAINTEXT")
        return protocol

    @classmethod
    def from_env(cls) -> "KafkaConnection":
        """The connection the environment describes (the CLI, the bench, the tests)."""
        return KafkaClientSettings().kafka_connection()


def connection_of(kafka: "KafkaConnection | str") -> KafkaConnection:
    """A bootstrap address alone is a PLAINTEXT connection (a broker that wants more refuses it, loudly)."""
    return kafka if isinstance(kafka, KafkaConnection) else KafkaConnection(kafka)


class KafkaClientSettings(BaseSettings):
    """The Kafka client settings every process reads (ServiceSettings has them too)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", env_file=None)

    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092")
    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        description="PLAINTEXT, SSL (TLS; with KAFKA_SSL_CERTFILE also mTLS), SASL_PLAINTEXT or SASL_SSL",
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        default="SCRAM-SHA-512",
        description="With SASL_*: SCRAM-SHA-512 (Strimzi's scram-sha-512), SCRAM-SHA-256 or PLAIN",
    )
    kafka_sasl_username: str | None = Field(default=None, description="With SASL_*: the user (a KafkaUser's name)")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="With SASL_*: its password")
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="With SSL or SASL_SSL: PEM file of the CA that signed the broker's certificate"
    )
    kafka_ssl_certfile: Path | None = Field(
        default=None, description="With SSL or SASL_SSL: PEM file of the client certificate (mTLS)"
    )
    kafka_ssl_keyfile: Path | None = Field(default=None, description="PEM file of the client certificate's key")
    kafka_ssl_key_password: SecretStr | None = Field(default=None, description="The key file's password, if any")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        protocol = self.kafka_security_protocol
        if protocol.startswith("SASL_") and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise KafkaSettingsError(
                f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        tls_files = {
            "KAFKA_SSL_CAFILE": self.kafka_ssl_cafile,
            "KAFKA_SSL_CERTFILE": self.kafka_ssl_certfile,
            "KAFKA_SSL_KEYFILE": self.kafka_ssl_keyfile,
        }
        given = [name for name, value in tls_files.items() if value is not None]
        if given and protocol not in ("SSL", "SASL_SSL"):
            # A CA or a client certificate given for a connection without TLS is a mistake, not a choice.
            raise KafkaSettingsError(f"{', '.join(given)} set, but KAFKA_SECURITY_PROTOCOL={protocol} has no TLS")
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise KafkaSettingsError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together (the client certificate)")
        for name, path in tls_files.items():
            if path is not None and not path.is_file():
                raise KafkaSettingsError(f"{name}: no such file: {path}")
        return self

    def kafka_connection(self) -> KafkaConnection:
        protocol = self.kafka_security_protocol
        if protocol == "PLAINTEXT":
            return KafkaConnection(self.kafka_bootstrap_servers)
        ssl_context = None
        if protocol in ("SSL", "SASL_SSL"):
            key_password = self.kafka_ssl_key_password.get_secret_value() if self.kafka_ssl_key_password else None
            # Hostname checked and the chain verified (aiokafka's helper never turns either off).
            ssl_context = create_ssl_context(
                cafile=self.kafka_ssl_cafile,
                certfile=self.kafka_ssl_certfile,
                keyfile=self.kafka_ssl_keyfile,
                password=key_password,
            )
        if protocol == "SSL":
            return KafkaConnection(self.kafka_bootstrap_servers, BaseSecurity(ssl_context=ssl_context, use_ssl=True))
        username, password = self.kafka_sasl_username, self.kafka_sasl_password
        if username is None or password is None:  # refused by the validator already; for the type checker
            raise KafkaSettingsError("SASL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        security = _SASL[self.kafka_sasl_mechanism](
            username,
            password.get_secret_value(),
            ssl_context=ssl_context,
            use_ssl=protocol == "SASL_SSL",
        )
        return KafkaConnection(self.kafka_bootstrap_servers, security)

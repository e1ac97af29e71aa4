"""The Kafka security settings become the same client arguments for FastStream and aiokafka, refuse
contradictions, and the TLS context really verifies the broker and presents the client certificate (mTLS)."""

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram512
from pydantic import ValidationError

from oms_runtime.kafka_connection import KafkaClientSettings, KafkaConnection, connection_of
from oms_runtime.settings import ServiceSettings


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    d = tmp_path_factory.mktemp("pki")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", str(d / "ca.key"),
        "-out", str(d / "ca.crt"), "-subj", "/CN=test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign", "-addext", "subjectKeyIdentifier=hash",
    )  # fmt: skip
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"),
            "-subj", f"/CN=oms-{name}",
        )  # fmt: skip
        (d / f"{name}.ext").write_text(f"{ext}\nauthorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n")
        _openssl(
            "x509", "-req", "-days", "2", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"),
            "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-extfile", str(d / f"{name}.ext"),
            "-out", str(d / f"{name}.crt"),
        )  # fmt: skip
    return d


def test_plaintext_by_default() -> None:
    connection = KafkaClientSettings(kafka_bootstrap_servers="broker:9092").kafka_connection()
    assert connection.security is None
    assert connection.client_args() == {"bootstrap_servers": "broker:9092"}
    assert connection_of("broker:9092") == connection


def test_sasl_ssl_scram_gives_aiokafka_and_faststream_the_same_credentials(pki: Path) -> None:
    settings = KafkaClientSettings(
        kafka_bootstrap_servers="broker:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="order-service",
        kafka_sasl_password="s3cret-scram",
        kafka_ssl_cafile=pki / "ca.crt",
    )
    connection = settings.kafka_connection()
    assert isinstance(connection.security, SASLScram512)
    assert connection.security.use_ssl
    args = connection.client_args()
    context = args.pop("ssl_context")
    assert args == {
        "bootstrap_servers": "broker:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "order-service",
        "sasl_plain_password": "s3cret-scram",
    }
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [dict(entry[0] for entry in ca["subject"])["commonName"] for ca in context.get_ca_certs()] == ["test CA"]
    # The password is a secret of the settings: never in their repr (a log line of the settings).
    assert "s3cret-scram" not in repr(settings)


def test_sasl_plain_and_sasl_without_tls() -> None:
    connection = KafkaClientSettings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password="p",
    ).kafka_connection()
    assert isinstance(connection.security, SASLPlaintext)
    args = connection.client_args()
    assert (args["security_protocol"], args["sasl_mechanism"], args["ssl_context"]) == ("SASL_PLAINTEXT", "PLAIN", None)


def test_the_service_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch, pki: Path) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(pki / "ca.crt"))
    monkeypatch.setenv("KAFKA_SSL_CERTFILE", str(pki / "client.crt"))
    monkeypatch.setenv("KAFKA_SSL_KEYFILE", str(pki / "client.key"))
    connection = ServiceSettings().kafka_connection()
    assert type(connection.security) is BaseSecurity
    assert connection.protocol == "SSL"
    assert KafkaConnection.from_env().protocol == "SSL"


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u"}, "KAFKA_SASL_PASSWORD"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "KAFKA_SASL_USERNAME"),
        ({"kafka_ssl_cafile": "ca.crt"}, "has no TLS"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "client.crt"}, "go together"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "missing.crt"}, "no such file"),
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
    ],
)
def test_contradicting_settings_are_refused_at_start(
    settings: dict[str, str], complaint: str, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(pki)
    with pytest.raises(ValidationError, match=complaint):
        KafkaClientSettings.model_validate(settings)


async def test_the_tls_context_verifies_the_server_and_presents_the_client_certificate(pki: Path) -> None:
    """A real handshake with a server that requires a client certificate from the CA (what a broker with
    `ssl.client.auth=required` does): the client sends its certificate; without one it is refused."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki / "ca.crt")
    server_context.load_cert_chain(pki / "server.crt", pki / "server.key")
    server_context.verify_mode = ssl.CERT_REQUIRED
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        seen.append(dict(entry[0] for entry in peer["subject"])["commonName"])
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]

    def context(**files: Path) -> ssl.SSLContext:
        settings = KafkaClientSettings.model_validate(
            {
                "kafka_bootstrap_servers": f"127.0.0.1:{port}",
                "kafka_security_protocol": "SSL",
                "kafka_ssl_cafile": pki / "ca.crt",
                **files,
            }
        )
        ssl_context: ssl.SSLContext = settings.kafka_connection().client_args()["ssl_context"]
        return ssl_context

    async def exchange(ssl_context: ssl.SSLContext) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_context)
        try:
            return await reader.read()
        finally:
            writer.close()

    async with server:
        mtls = context(kafka_ssl_certfile=pki / "client.crt", kafka_ssl_keyfile=pki / "client.key")
        assert await exchange(mtls) == b"ok"
        assert seen == ["oms-client"]
        # TLS 1.3 checks the client's certificate after the client's side of the handshake: the refusal is an
        # error or a connection closed without an answer.
        try:
            answer = await exchange(context())
        except (ssl.SSLError, ConnectionError):
            answer = b""
        assert answer == b""
        assert seen == ["oms-client"]

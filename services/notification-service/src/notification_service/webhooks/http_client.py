"""The outbound HTTP client of webhooks: one pooled httpx client whose every new connection goes only to
an address that was checked when the connection was made.

Checking a URL's host when the subscription is made is not enough: DNS may answer differently later
(rebinding). So the check lives in the connection itself: the network backend under httpx's pool resolves
the host, refuses it if any address is private, loopback, link-local or otherwise not public (unless
WEBHOOK_ALLOW_PRIVATE_TARGETS), and connects to the addresses it checked, not to whatever a second lookup
would say. TLS is then verified against the host name as usual (httpcore does the handshake on top).
No proxies from the environment, no redirects: the request goes to the subscribed URL or nowhere.
"""

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

from notification_service.webhooks.domain import IpAddress, TargetRefusedError, check_addresses

Resolver = Callable[[str, int], Awaitable[list[IpAddress]]]
"""Host and port -> every address the host resolves to."""


RESOLVE_TIMEOUT_S = 5.0


async def system_resolver(host: str, port: int) -> list[IpAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
        )
    except TimeoutError:
        raise TargetRefusedError(f"{host} was not resolved within {RESOLVE_TIMEOUT_S:g}s") from None
    except (OSError, UnicodeError) as exc:
        # gaierror (no such name), and a name the IDNA codec refuses (a label past 63 characters, ...).
        raise TargetRefusedError(f"{host} cannot be resolved ({type(exc).__name__})") from None
    found: dict[str, IpAddress] = {}
    for *_, sockaddr in infos:
        # An IPv6 sockaddr may carry a zone (fe80::1%eth0): the address is what is judged.
        text = str(sockaddr[0]).split("%", 1)[0]
        found.setdefault(text, ipaddress.ip_address(text))
    return list(found.values())


async def check_target(url: str, resolver: Resolver, *, allow_private: bool) -> None:
    """Refuses a URL that is not http(s), or (unless allowed) whose host resolves to a non-public address."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, UnicodeError):
        raise TargetRefusedError("is not a URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise TargetRefusedError("must be an http(s) URL with a host")
    if parsed.scheme == "http" and not allow_private:
        raise TargetRefusedError("must be https (plain http only where WEBHOOK_ALLOW_PRIVATE_TARGETS is set)")
    if parsed.userinfo:
        raise TargetRefusedError("must not hold credentials (the signature authenticates the OMS)")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    check_addresses(parsed.host, await resolver(parsed.host, port), allow_private=allow_private)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, resolver: Resolver, allow_private: bool) -> None:
        self._resolver = resolver
        self._allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolver(host, port)
        check_addresses(host, addresses, allow_private=self._allow_private)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefusedError("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, resolver: Resolver, allow_private: bool, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        ssl_context = httpx.create_ssl_context(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(resolver, allow_private),
        )


def webhook_client(
    *, timeout_s: float, concurrency: int, allow_private: bool, resolver: Resolver = system_resolver
) -> httpx.AsyncClient:
    """The one client every delivery goes through: connections kept open per endpoint, bounded timeouts."""
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency, keepalive_expiry=30)
    return httpx.AsyncClient(
        transport=_GuardedTransport(resolver, allow_private, limits),
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": "oms-webhooks/1"},
    )

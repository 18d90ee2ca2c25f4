"""An httpx transport that connects only to addresses the SSRF rules allow, checked on connect.

Checking a webhook's host when its destination is created is not enough: DNS can answer with a
public address then and with ``127.0.0.1`` at delivery (DNS rebinding), and the HTTP client would
resolve the name again on its own. So the name is resolved here, by the transport's own
:class:`GuardedBackend` (an httpcore network backend, httpcore being httpx's public lower layer):
every address is judged by ``engine/sinks/ssrf.py``, the connection goes only to an allowed one,
and the peer of the connected socket is judged once more. TLS still verifies the certificate
against the URL's host name, since httpcore passes that name, not the address, to ``start_tls``.

A refused address raises :class:`~engine.errors.DeliveryRefused` out of ``client.send``, with the
reason. Proxies from the environment are never used (a proxy would connect on our behalf).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx
import trio

from engine.errors import DeliveryRefused
from engine.sinks.ssrf import address_reason

__all__ = ["GuardedBackend", "PoolTransport", "Resolver", "guarded_client", "resolve"]

# (host, port) -> the IP addresses to try, in order; the tests' seam for a rebinding name.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (trio's ``getaddrinfo``, in a worker thread), without
    duplicates. Raises ``OSError`` (``socket.gaierror``) when it does not resolve."""
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's Trio backend, connecting only to allowed addresses of each name.

    ``allow_private`` turns the address rules off. ``resolver`` replaces DNS (tests).
    """

    def __init__(self, *, allow_private: bool = False, resolver: Resolver = resolve) -> None:
        self._inner = httpcore.TrioBackend()
        self._allow_private = allow_private
        self._resolve = resolver

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no address")
        refusals = [self.reason(address) for address in addresses]
        allowed = [a for a, why in zip(addresses, refusals, strict=True) if why is None]
        if not allowed:
            raise DeliveryRefused(_named(host, refusals[0] or ""))
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in allowed:
            try:
                stream = await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            peer = stream.get_extra_info("server_addr")
            why = self.reason(str(peer[0])) if peer else "the connected address is unknown"
            if why is not None:
                await stream.aclose()
                raise DeliveryRefused(_named(host, why))
            return stream
        assert failure is not None
        raise failure

    def reason(self, address: str) -> str | None:
        """Why ``address`` may not be connected, or None."""
        if self._allow_private:
            return None
        try:
            return address_reason(address)
        except ValueError:
            return f"{address!r} is not an IP address"

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DeliveryRefused("webhooks never connect to a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _named(host: str, reason: str) -> str:
    return reason if reason.startswith(host) else f"{host}: {reason}"


class PoolTransport(httpx.AsyncBaseTransport):
    """An httpcore connection pool as an httpx transport (what ``httpx.AsyncHTTPTransport``
    does, with our network backend), httpcore's errors raised as httpx's of the same name."""

    def __init__(self, pool: httpcore.AsyncConnectionPool) -> None:
        self._pool = pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await self._pool.handle_async_request(core)
        except _CORE_ERRORS as exc:
            raise _as_httpx(exc, request) from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream, request),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any, request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except _CORE_ERRORS as exc:
            raise _as_httpx(exc, self._request) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()


_CORE_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
)


def _as_httpx(exc: Exception, request: httpx.Request) -> httpx.TransportError:
    """httpx's exception of the same name as httpcore's (``ConnectTimeout``, ``ReadError``, ...)."""
    for cls in type(exc).__mro__:
        mapped = getattr(httpx, cls.__name__, None)
        if isinstance(mapped, type) and issubclass(mapped, httpx.TransportError):
            return mapped(str(exc) or cls.__name__, request=request)
    return httpx.TransportError(str(exc), request=request)


def guarded_client(
    *,
    concurrency: int,
    timeout_s: float,
    ssl_context: ssl.SSLContext,
    allow_private: bool = False,
    resolver: Resolver = resolve,
    user_agent: str = "triggerbook-webhook",
) -> httpx.AsyncClient:
    """One httpx client whose every connection goes through :class:`GuardedBackend`: at most
    ``concurrency`` connections (kept alive between deliveries), no redirects followed, no
    proxies or ``.netrc`` from the environment, ``timeout_s`` for each phase."""
    pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=concurrency,
        max_keepalive_connections=concurrency,
        keepalive_expiry=30.0,
        http1=True,
        http2=False,
        retries=0,
        network_backend=GuardedBackend(allow_private=allow_private, resolver=resolver),
    )
    return httpx.AsyncClient(
        transport=PoolTransport(pool),
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": user_agent},
    )

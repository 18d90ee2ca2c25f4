"""The webhook sink against a real HTTP receiver that verifies each request with the Standard
Webhooks reference package; the SSRF guard at create time and at connection time."""

from __future__ import annotations

import base64
import ipaddress
import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpcore
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import DeliveryFailed, DeliveryRefused, DestinationGone
from engine.model import Destination, Notification
from engine.plugins.registry import load_registry
from engine.sinks.guarded import GuardedBackend
from engine.sinks.ssrf import address_reason
from engine.sinks.webhook import WebhookSink, retry_after_s
from tests.sinks.webhook_receiver import Reply, WebhookReceiver

SECRET = WebhookSink().new_secret()
DATA: dict[str, object] = {
    "alert_id": "42",
    "name": "BTC <breakout>",
    "username": "ada",
    "email": "ada@example.com",
    "exchange": "binance",
    "symbol": "BTCUSDT",
    "direction": "above",
    "target_price": "70000",
    "triggered_price": "70000.10",
    "created_at": "2026-11-25T17:00:00+00:00",
    "triggered_at": "2026-11-25T17:36:16.123456+00:00",
}
PUBLIC = "93.184.215.14"  # never connected to: every test that resolves to it is refused first


def note(target: str, *, event: str = "fire", secret: str | None = SECRET, id: int = 7):
    destination = Destination(id=3, owner_id=1, kind="webhook", target=target, secret=secret)
    return Notification(
        id=id, alert_id=42, channel="webhook", data=DATA, destination=destination, event=event
    )


def local_sink(**config: object) -> WebhookSink:
    return WebhookSink({"allow_private": True, "timeout_s": 2.0, **config})


@pytest.fixture
async def receiver(nursery: trio.Nursery) -> WebhookReceiver:
    server = WebhookReceiver(SECRET)
    await nursery.start(server.serve)
    return server


def answers(*replies: Reply):
    queue = list(replies)
    return lambda _: queue.pop(0) if len(queue) > 1 else queue[0]


# ---------------------------------------------------------------- delivery


async def test_a_delivery_is_signed_the_standard_way(receiver: WebhookReceiver) -> None:
    sink = local_sink()
    with trio.fail_after(5):
        async with sink.open():
            await sink.deliver(note(receiver.url()))
            await sink.deliver(note(receiver.url(), event="test", id=8))
    fired, tested = receiver.received
    assert fired.method == "POST" and fired.path == "/hook"
    assert fired.verified == {
        "type": "alert.fired",
        "timestamp": DATA["triggered_at"],
        "data": DATA,
    }
    assert fired.headers["content-type"] == "application/json"
    assert fired.headers["webhook-id"] == "7"
    assert abs(int(fired.headers["webhook-timestamp"]) - time.time()) < 5
    assert fired.headers["webhook-signature"].startswith("v1,")
    assert tested.verified["type"] == "alert.test"  # type: ignore[index]
    assert tested.headers["webhook-id"] == "8"
    assert fired.peer == tested.peer == "127.0.0.1"


async def test_a_wrong_secret_fails_verification(receiver: WebhookReceiver) -> None:
    with trio.fail_after(5):
        await local_sink().deliver(note(receiver.url(), secret=WebhookSink().new_secret()))
    assert isinstance(receiver.received[0].verified, Exception)


async def test_a_retry_carries_the_same_webhook_id(receiver: WebhookReceiver) -> None:
    receiver.respond = answers(Reply(500, body=b"database down"), Reply(200))
    sink = local_sink()
    with trio.fail_after(5):
        async with sink.open():
            with pytest.raises(
                DeliveryFailed, match=re.escape("HTTP 500 from 127.0.0.1: database down")
            ):
                await sink.deliver(note(receiver.url()))
            await sink.deliver(note(receiver.url()))
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "7"
    assert first.body == second.body
    assert not isinstance(first.verified, Exception)
    assert not isinstance(second.verified, Exception)


@pytest.mark.parametrize(
    ("reply", "error", "match"),
    [
        (Reply(503), DeliveryFailed, "HTTP 503"),
        (Reply(408), DeliveryFailed, "HTTP 408"),
        (Reply(410, body=b"gone"), DestinationGone, "HTTP 410 from 127.0.0.1: gone"),
        (Reply(404), DeliveryRefused, "HTTP 404"),
        (Reply(400, body=b"bad"), DeliveryRefused, "HTTP 400 from 127.0.0.1: bad"),
        (
            Reply(302, headers=(("location", "http://127.0.0.1:1/elsewhere?token=t0ken"),)),
            DeliveryFailed,
            r"HTTP 302 from 127.0.0.1: redirect to http://127.0.0.1/elsewhere not followed",
        ),
    ],
)
async def test_each_answer_means_one_outcome(
    receiver: WebhookReceiver, reply: Reply, error: type[Exception], match: str
) -> None:
    receiver.respond = answers(reply)
    with trio.fail_after(5), pytest.raises(error, match=match) as caught:
        await local_sink().deliver(note(receiver.url()))
    assert [r.path for r in receiver.received] == ["/hook"]  # a redirect is not followed
    assert SECRET not in str(caught.value) and SECRET[6:] not in str(caught.value)
    if error is DeliveryRefused:
        assert not isinstance(caught.value, DestinationGone)


async def test_429_asks_for_its_retry_after(receiver: WebhookReceiver) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    receiver.respond = answers(
        Reply(429, headers=(("retry-after", "120"),)), Reply(429, headers=(("retry-after", later),))
    )
    sink = local_sink()
    with trio.fail_after(5):
        async with sink.open():
            with pytest.raises(DeliveryFailed) as seconds:
                await sink.deliver(note(receiver.url()))
            with pytest.raises(DeliveryFailed) as date:
                await sink.deliver(note(receiver.url()))
    assert seconds.value.retry_after_s == 120.0
    assert date.value.retry_after_s is not None and 80 <= date.value.retry_after_s <= 90


def test_retry_after_reads_seconds_and_dates() -> None:
    now = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
    assert retry_after_s("30", now) == 30.0
    assert retry_after_s("Wed, 25 Nov 2026 17:01:00 GMT", now) == 60.0
    assert retry_after_s("Wed, 25 Nov 2026 16:00:00 GMT", now) == 0.0
    assert retry_after_s("soon", now) is None
    assert retry_after_s(None, now) is None
    assert retry_after_s("-5", now) is None


async def test_a_receiver_that_never_answers_fails_within_timeout_s(
    receiver: WebhookReceiver,
) -> None:
    receiver.respond = answers(Reply(hang=True))
    start = trio.current_time()
    with (
        trio.fail_after(5),
        pytest.raises(DeliveryFailed, match=re.escape("no answer within 0.5 s")),
    ):
        await local_sink(timeout_s=0.5).deliver(note(receiver.url()))
    assert trio.current_time() - start < 2
    assert len(receiver.received) == 1


async def test_a_closed_port_is_a_failure_to_retry() -> None:
    with trio.fail_after(5), pytest.raises(DeliveryFailed, match="ConnectError"):
        await local_sink().deliver(note("http://127.0.0.1:1/hook"))


async def test_no_destination_or_no_secret_is_refused() -> None:
    bare = Notification(id=1, alert_id=1, channel="webhook", data=DATA)
    with trio.fail_after(5):
        with pytest.raises(DeliveryRefused, match="needs a destination"):
            await local_sink().deliver(bare)
        with pytest.raises(DeliveryRefused, match="no signing secret"):
            await local_sink().deliver(note("http://127.0.0.1:1/", secret=None))
        with pytest.raises(DeliveryRefused, match="malformed"):
            await local_sink().deliver(note("http://127.0.0.1:1/", secret="whsec_!!!"))


# ---------------------------------------------------------------- SSRF


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
        ("http://10.0.0.1/hook", "10.0.0.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://[::1]:8080/", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", r"\(127.0.0.1\) is a loopback address"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://100.64.0.1/", "not a public address"),
        ("http://127.1/", "127.0.0.1 is a loopback address"),
        ("http://2130706433/", "127.0.0.1 is a loopback address"),
        ("http://localhost:8000/", "localhost always reaches this machine"),
        ("http://localhost./", "localhost. always reaches this machine"),
        ("http://api.localhost/", "always reaches this machine"),
        ("ftp://example.com/", "must start with http:// or https://"),
        ("example.com/hook", "must start with http:// or https://"),
        ("http://user:pass@example.com/", "user name or password"),
        ("http:///hook", "needs a host"),
        ("http://example.com/a b", "spaces or control characters"),
        ("https://example.com/" + "a" * 2048, "at most 2048 characters"),
    ],
)
def test_check_target_refuses_with_a_reason(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WebhookSink().check_target(url)


@pytest.mark.parametrize(
    "url", [f"http://{PUBLIC}/hook", "https://[2606:4700:4700::1111]/x", "https://example.com"]
)
def test_check_target_accepts_public_targets(url: str) -> None:
    assert WebhookSink().check_target(f"  {url} ") == url


def test_allow_private_lifts_the_address_rules() -> None:
    assert local_sink().check_target("http://127.0.0.1:9/x") == "http://127.0.0.1:9/x"
    assert local_sink().check_target("http://localhost/") == "http://localhost/"


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]", "[::ffff:127.0.0.1]", "localhost"],
)
async def test_delivery_refuses_a_forbidden_address(receiver: WebhookReceiver, host: str) -> None:
    """No check at create time here: the guard on connect refuses on its own (``localhost``
    through the real resolver)."""
    sink = WebhookSink({"timeout_s": 2.0})
    with trio.fail_after(5), pytest.raises(DeliveryRefused, match="address"):
        async with sink.open():
            await sink.deliver(note(receiver.url(host=host)))
    assert receiver.received == []


class Rebinding:
    """A resolver seam: the name answers with a public address first, then with loopback."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


async def test_a_name_rebound_to_loopback_is_refused_at_delivery(
    receiver: WebhookReceiver,
) -> None:
    resolver = Rebinding([PUBLIC], ["127.0.0.1"])
    sink = WebhookSink({"timeout_s": 2.0}, resolver=resolver)
    url = f"http://hooks.example.test:{receiver.port}/hook"
    with trio.fail_after(5):
        await sink.vet_target(sink.check_target(url))  # public when created
        with pytest.raises(DeliveryRefused, match=re.escape("127.0.0.1 is a loopback address")):
            await sink.deliver(note(url))
    assert resolver.asked == [("hooks.example.test", receiver.port)] * 2
    assert receiver.received == []


async def test_vet_target_refuses_a_name_with_only_forbidden_addresses() -> None:
    sink = WebhookSink(resolver=Rebinding(["127.0.0.1", "10.1.2.3"]))
    with trio.fail_after(5):
        with pytest.raises(
            ValueError, match=re.escape("no public address: 127.0.0.1 is a loopback")
        ):
            await sink.vet_target("https://inside.example.test/hook")
        await WebhookSink(resolver=Rebinding(["10.1.2.3", PUBLIC])).vet_target(
            "https://mixed.example.test/"
        )  # one public address: delivery connects only to that one
        await sink.vet_target(f"https://{PUBLIC}/")  # a literal needs no resolving


async def test_vet_target_refuses_a_name_that_does_not_resolve() -> None:
    async def nowhere(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    with trio.fail_after(5), pytest.raises(ValueError, match="does not resolve"):
        await WebhookSink(resolver=nowhere).vet_target("https://nowhere.example.test/")


IPS = st.one_of(
    st.ip_addresses(v=4),
    st.ip_addresses(v=6),
    st.ip_addresses(v=4).map(lambda ip: ipaddress.IPv6Address(f"::ffff:{ip}")),
    st.ip_addresses(v=4).map(lambda ip: ipaddress.IPv6Address((0x2002 << 112) | (int(ip) << 80))),
    st.ip_addresses(v=4).map(lambda ip: ipaddress.IPv6Address(f"64:ff9b::{ip}")),
    st.sampled_from(
        [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16")]
    ).flatmap(lambda net: st.integers(0, net.num_addresses - 1).map(lambda i: net[i])),
)
FLAGS = ("is_unspecified", "is_loopback", "is_link_local", "is_multicast", "is_private")


@given(IPS)
def test_the_classifier_agrees_with_ipaddress(ip: ipaddress.IPv4Address) -> None:
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):  # the IPv4 address it routes to, if any
        if ip.ipv4_mapped or ip.sixtofour:
            candidates.append(ip.ipv4_mapped or ip.sixtofour)
        elif ip in ipaddress.ip_network("64:ff9b::/96"):
            candidates.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    bad = any(
        any(getattr(c, flag) for flag in (*FLAGS, "is_reserved")) or not c.is_global
        for c in candidates
    )
    reason = address_reason(ip)
    assert (reason is not None) == bad
    for c in candidates:  # the reason names the first flag that holds, for the address it cites
        for flag in FLAGS:
            if getattr(c, flag) and reason is not None and f"({c})" in reason:
                assert flag.removeprefix("is_").replace("_", "-") in reason
                break
    assert address_reason(str(ip)) == reason


# ---------------------------------------------------------------- the plugin


def test_the_webhook_sink_is_a_builtin_with_its_options() -> None:
    registry = load_registry(entry_points=False)
    assert registry.sinks["webhook"] is WebhookSink
    assert registry.sections()["sinks.webhook"] == {
        "enabled": False,
        "concurrency": 8,
        "timeout_s": 10.0,
        "max_attempts": 12,
        "allow_private": False,
    }
    assert WebhookSink.takes_destinations and not WebhookSink.reaches_account


def test_secrets_and_masks() -> None:
    sink = WebhookSink()
    one, two = sink.new_secret(), sink.new_secret()
    assert one != two and one.startswith("whsec_")
    assert len(base64.b64decode(one.removeprefix("whsec_"))) == 32
    assert (
        sink.mask_target("https://h.example/x?token=abc&v=1")
        == "https://h.example/x?token=***&v=***"
    )
    assert sink.mask_target("https://h.example/x") == "https://h.example/x"


class Judged(GuardedBackend):
    """The guard with its own rule: ``forbidden`` addresses, and, from the ``peer_from``-th
    judgement on, every address (so the peer check after connecting is seen on its own)."""

    def __init__(self, addresses: list[str], forbidden: set[str], peer_from: int = 0) -> None:
        super().__init__(resolver=Rebinding(addresses))
        self.forbidden = forbidden
        self.peer_from = peer_from
        self.judged: list[str] = []

    def reason(self, address: str) -> str | None:
        self.judged.append(address)
        if address in self.forbidden or (self.peer_from and len(self.judged) >= self.peer_from):
            return f"{address} is forbidden here"
        return None


async def test_the_guard_connects_only_to_an_allowed_address(receiver: WebhookReceiver) -> None:
    """127.0.0.1 (where the receiver listens) comes first but is forbidden: the guard goes to
    the allowed 127.0.0.2 only, where nothing listens."""
    backend = Judged(["127.0.0.1", "127.0.0.2"], forbidden={"127.0.0.1"})
    with trio.fail_after(5), pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("hooks.example.test", receiver.port)
    assert backend.judged == ["127.0.0.1", "127.0.0.2"]
    assert receiver.received == []


async def test_the_guard_judges_the_connected_peer(receiver: WebhookReceiver) -> None:
    backend = Judged(["127.0.0.1"], forbidden=set(), peer_from=2)
    with trio.fail_after(5), pytest.raises(DeliveryRefused, match=r"hooks\.example\.test: 127"):
        await backend.connect_tcp("hooks.example.test", receiver.port)
    assert backend.judged == ["127.0.0.1", "127.0.0.1"]  # resolved, then connected
    allowed = Judged(["127.0.0.1"], forbidden=set())
    with trio.fail_after(5):
        stream = await allowed.connect_tcp("hooks.example.test", receiver.port)
        assert stream.get_extra_info("server_addr")[0] == "127.0.0.1"
        await stream.aclose()

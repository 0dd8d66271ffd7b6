"""The health endpoint answers probes and scrapes over real HTTP on loopback."""

from __future__ import annotations

import logging
import socket
import urllib.error
import urllib.request
from types import SimpleNamespace

import anyio
import pytest

from supervisor.pipeline.health_server import Check, HealthServer, _beyond_loopback

pytestmark = pytest.mark.anyio


def _get(port: int, path: str, method: str = "GET") -> tuple[int, bytes, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers["Content-Type"]


class _State:
    ready = Check(False, ("no partitions assigned",))


def _server(state: _State) -> HealthServer:
    return HealthServer(
        "127.0.0.1",
        0,
        live=lambda: Check(True),
        ready=lambda: state.ready,
        metrics=lambda: (b"pipeline_up 1\n", "text/plain; version=0.0.4"),
    )


async def test_probes_and_metrics_are_served() -> None:
    """/healthz, /readyz and /metrics answer with their status codes and bodies."""
    state = _State()
    async with anyio.create_task_group() as group:
        port = await group.start(_server(state).run)
        assert await anyio.to_thread.run_sync(_get, port, "/healthz") == (
            200,
            b"ok\n",
            "text/plain; charset=utf-8",
        )
        status, body, _ = await anyio.to_thread.run_sync(_get, port, "/readyz")
        assert (status, body) == (503, b"not ok\nno partitions assigned\n")
        state.ready = Check(True)
        assert (await anyio.to_thread.run_sync(_get, port, "/readyz"))[0] == 200
        assert (await anyio.to_thread.run_sync(_get, port, "/metrics"))[1] == b"pipeline_up 1\n"
        group.cancel_scope.cancel()


async def test_unknown_paths_and_methods_are_refused() -> None:
    """An unknown path is 404, a POST is 405, and HEAD carries no body."""
    async with anyio.create_task_group() as group:
        port = await group.start(_server(_State()).run)
        assert (await anyio.to_thread.run_sync(_get, port, "/nope"))[0] == 404
        assert (await anyio.to_thread.run_sync(_get, port, "/healthz", "POST"))[0] == 405
        status, body, _ = await anyio.to_thread.run_sync(_get, port, "/healthz", "HEAD")
        assert (status, body) == (200, b"")
        group.cancel_scope.cancel()


async def test_a_client_that_sends_garbage_does_not_stop_the_server() -> None:
    """A malformed request or a silent disconnect is dropped and the server keeps serving."""

    def garbage(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"nonsense\r\n\r\n")
        with socket.create_connection(("127.0.0.1", port)):
            pass

    async with anyio.create_task_group() as group:
        port = await group.start(_server(_State()).run)
        await anyio.to_thread.run_sync(garbage, port)
        assert (await anyio.to_thread.run_sync(_get, port, "/healthz"))[0] == 200
        group.cancel_scope.cancel()


async def test_no_exposure_warning_on_loopback(caplog: pytest.LogCaptureFixture) -> None:
    """Bound to 127.0.0.1 (and to localhost's loopback addresses), nothing is logged."""
    for host in ("127.0.0.1", "localhost"):
        server = HealthServer(
            host, 0, live=lambda: Check(True), ready=lambda: Check(True), metrics=lambda: (b"", "")
        )
        with caplog.at_level(logging.WARNING, logger="supervisor.health"):
            async with anyio.create_task_group() as group:
                await group.start(server.run)
                group.cancel_scope.cancel()
    assert "beyond loopback" not in caplog.text


class _BoundTo:
    """A listener's socket attributes only: tests may not bind beyond loopback here."""

    def __init__(self, host: str) -> None:
        self.host = host

    def extra(self, attribute: object) -> tuple[str, int]:
        return (self.host, 8080)


@pytest.mark.parametrize(
    ("hosts", "exposed"),
    [
        (["0.0.0.0"], ["0.0.0.0"]),
        (["::", "0.0.0.0"], ["::", "0.0.0.0"]),
        (["127.0.0.1", "::1"], []),
        (["10.1.2.3"], ["10.1.2.3"]),
        (["fe80::1%eth0"], ["fe80::1%eth0"]),
    ],
)
def test_addresses_beyond_loopback_are_the_ones_warned_about(
    hosts: list[str], exposed: list[str]
) -> None:
    """Every bound address that is not loopback is named; loopback ones are not."""

    multi = SimpleNamespace(listeners=[_BoundTo(host) for host in hosts])
    assert _beyond_loopback(multi) == exposed  # type: ignore[arg-type]

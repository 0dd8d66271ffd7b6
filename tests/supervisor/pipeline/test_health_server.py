"""The health endpoint answers probes and scrapes over real HTTP on loopback."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import anyio
import pytest

from supervisor.pipeline.health_server import Check, HealthServer

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

"""Download throughput: our download stage vs a plain httpx loop, same server, same run.

One local HTTPS server runs in a child process, so its work does not share this
process's GIL: a few lines of asyncio that answer every request on a keep-alive
connection with the same 100 KB body, with a certificate from the tests' throwaway CA,
on ::1. (The tests' file server, a ThreadingHTTPServer, was the bottleneck here: with
64 connections its threads fought over the GIL and every downloader measured the same.)
 Every run downloads `files` of them with 64 downloads in flight (64
worker tasks pulling from one queue, over a pool of 64 connections):

* ours: `Downloader.download` with a policy that allows the server's name (resolved by
  an in-memory resolver to ::1, which the policy trusts; production resolves by DNS): URL
  check, per-host breaker, pinned connection, our redirect loop, the size cap, the body
  streamed to a temporary file and hashed; the file is deleted afterwards.
* plain httpx: an `httpx.AsyncClient` (64 connections, the same CA) GETs
  https://[::1]:PORT/... and reads the body into memory (`aread`): the least work.
* plain httpx + file: the same, writing the body to a temporary file and hashing it
  with SHA-256 on the event loop, then deleting the file: the same work as ours, done
  the plainest way.

The runs rotate (each round starts with the next of the three); files/s and MB/s are
the median over the rounds, ratios are against plain httpx. Timeouts are 60 s for all
three: on a loaded machine 64 TLS handshakes at once can take seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import multiprocessing
import os
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Final

import anyio
import httpx

from actors.attachments import Downloader, DownloadLimits
from core.urls import UrlPolicy
from scripts.bench.report import Section, TargetCheck, ratio
from scripts.bench.timing import rounds_in_rotation

__all__ = ["run"]

FILE_BYTES: Final = 100 * 1024
CONCURRENCY: Final = 64
TARGET_RATIO: Final = 0.8
OURS: Final = "ours: Downloader (pinned, checked, spooled + SHA-256)"
PLAIN: Final = "plain httpx AsyncClient, body in memory"
PLAIN_FILE: Final = "plain httpx AsyncClient + temp file + SHA-256"
SUPPORT: Final = Path(__file__).resolve().parents[2] / "tests" / "support"


def _serve(directory: str, reply: Connection) -> None:
    """The child process: serve 100 KB bodies over HTTPS on ::1 until killed."""
    sys.path.insert(0, str(SUPPORT))
    from throwaway_ca import ThrowawayCA

    ca = ThrowawayCA(Path(directory))
    certificate = ca.issue("bench-server", ["files.test"], ["::1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.key_and_chain_pem)
    body = os.urandom(FILE_BYTES)
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(head + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(answer, "::1", 0, ssl=context, backlog=1024)
        reply.send((server.sockets[0].getsockname()[1], str(ca.ca_pem)))
        await server.serve_forever()

    asyncio.run(main())


@contextmanager
def file_server(directory: Path) -> Iterator[tuple[int, str]]:
    """(port, CA file) of the file server running in a child process; stopped on exit."""
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(target=_serve, args=(str(directory), sending), daemon=True)
    child.start()
    try:
        if not receiving.poll(60):
            raise RuntimeError("the file server did not start within 60 s")
        port, ca_pem = receiving.recv()
        yield int(port), str(ca_pem)
    finally:
        child.terminate()
        child.join(10)


async def _loopback(host: str, port: int) -> list[str]:
    return ["::1"]


async def _in_parallel(
    count: int, download: Callable[[int], Awaitable[None]]
) -> tuple[float, float]:
    """Wall and CPU seconds (this process) to run `download(n)` for n < count, CONCURRENCY
    in flight."""
    send, receive = anyio.create_memory_object_stream[int](count)
    for number in range(count):
        send.send_nowait(number)
    send.close()

    async def worker() -> None:
        async for number in receive:
            await download(number)

    started, cpu_started = time.perf_counter(), time.process_time()
    async with anyio.create_task_group() as tasks:
        for _ in range(CONCURRENCY):
            tasks.start_soon(worker)
    return time.perf_counter() - started, time.process_time() - cpu_started


async def _measure(
    files: int, repeats: int, port: int, ca_pem: str
) -> dict[str, list[tuple[float, float]]]:
    tls = ssl.create_default_context(cafile=ca_pem)
    policy = UrlPolicy(
        allowed_hosts=["files.test"],
        allowed_ports=[port],
        trusted_networks=[ipaddress.ip_network("::1/128")],
        resolver=_loopback,
    )
    limits = DownloadLimits(max_connections=CONCURRENCY, connect_timeout_s=60, read_timeout_s=60)
    ours = Downloader(policy, limits, verify=tls)
    plain = httpx.AsyncClient(
        verify=tls,
        trust_env=False,
        timeout=60,
        limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY),
    )
    spool = Path(tempfile.mkdtemp(prefix="download-bench-"))

    def name(number: int) -> str:
        return f"files/f{number}.bin"

    async def with_ours(number: int) -> None:
        got = await ours.download(f"https://files.test:{port}/{name(number)}", spool)
        os.unlink(got.path)

    async def with_plain(number: int) -> None:
        response = await plain.get(f"https://[::1]:{port}/{name(number)}")
        response.raise_for_status()
        assert len(response.content) == FILE_BYTES

    async def with_plain_file(number: int) -> None:
        async with plain.stream("GET", f"https://[::1]:{port}/{name(number)}") as response:
            response.raise_for_status()
            digest = hashlib.sha256()
            descriptor, path = tempfile.mkstemp(dir=spool)
            with os.fdopen(descriptor, "wb") as file:
                async for chunk in response.aiter_raw():
                    digest.update(chunk)
                    file.write(chunk)
        os.unlink(path)

    cases = {OURS: with_ours, PLAIN: with_plain, PLAIN_FILE: with_plain_file}
    seconds: dict[str, list[tuple[float, float]]] = {case: [] for case in cases}
    try:
        for download in cases.values():  # warm-up: connections, TLS sessions, imports
            await _in_parallel(CONCURRENCY * 2, download)
        for _, case in rounds_in_rotation(list(cases), repeats):
            seconds[case].append(await _in_parallel(files, cases[case]))
    finally:
        await ours.aclose()
        await plain.aclose()
        os.rmdir(spool)
    return seconds


def run(files: int, repeats: int) -> list[Section]:
    """`repeats` rounds of `files` downloads each for ours and the two plain loops."""
    with (
        tempfile.TemporaryDirectory(prefix="download-bench-ca-") as directory,
        file_server(Path(directory)) as (port, ca_pem),
    ):
        seconds = anyio.run(_measure, files, repeats, port, ca_pem)
    rates = {case: [files / wall for wall, _ in values] for case, values in seconds.items()}
    cpu = {case: [cpu * 1e3 / files for _, cpu in values] for case, values in seconds.items()}
    plain_median = statistics.median(rates[PLAIN])
    rows = []
    for case, values in rates.items():
        median = statistics.median(values)
        rows.append(
            [
                case,
                "ours" if case == OURS else "baseline",
                f"{min(values):,.0f}",
                f"{median:,.0f}",
                f"{max(values):,.0f}",
                f"{median * FILE_BYTES / 1e6:,.1f}",
                ratio(median / plain_median),
                f"{min(cpu[case]):,.2f}",
            ]
        )
    ours_median = statistics.median(rates[OURS])
    check = TargetCheck.judged(
        what="downloads of 100 KB files, 64 in flight",
        ours=f"{ours_median:,.0f} files/s ({ratio(ours_median / plain_median)} plain httpx)",
        target=f">= {TARGET_RATIO}x plain httpx",
        met=ours_median >= TARGET_RATIO * plain_median,
        best_peer=f"plain httpx {plain_median:,.0f} files/s",
    )
    return [
        Section(
            key="download-throughput",
            title="Download throughput, 100 KB files over HTTPS, 64 in flight",
            columns=[
                "downloader",
                "kind",
                "min files/s",
                "median files/s",
                "max files/s",
                "median MB/s",
                "median vs plain httpx",
                "min CPU ms/file",
            ],
            rows=rows,
            checks=[check],
            notes=[
                f"{files:,} downloads of {FILE_BYTES // 1024} KB per round, {repeats} rounds of "
                "each in rotation, after a warm-up; one local HTTPS server (asyncio, HTTP/1.1 "
                "keep-alive) in a child process, on ::1, on the same machine: client and "
                "server share its cores.",
                "Ours resolves the server's name through an in-memory resolver (no DNS "
                "latency); the plain loops use the address literal.",
                "CPU ms/file: this process's CPU time over a round, per file (TLS, HTTP, "
                "hashing, file writes in worker threads included; the server's not); less "
                "disturbed by other processes than files/s.",
            ],
        )
    ]

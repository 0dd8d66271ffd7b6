"""TokenRefresherActor over azure-identity's real AzureCliCredential, alone and supervised.

The `az` on PATH is the shared fake (tests/support/fake_az.py) standing in for the Azure
CLI, which cannot log in to Azure AD here: it prints the JSON `az account get-access-token`
prints, with a chosen lifetime, fails on demand with the CLI's stderr, and records each
invocation.
Everything between it and the cache is the real code: azure-identity's subprocess
call and JSON parsing, the provider's error mapping, the refresher, the supervisor.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream
from fake_az import FakeAz

from actors.messages import RefreshRequest
from actors.token_refresher import TokenRefresherActor, TokenRefreshError, ask_for_fresh_token
from core.auth.credentials import AzureCredentialProvider
from core.auth.token_cache import TokenCache
from core.errors import TokenExpiredError
from core.types import ErrorCategory
from supervisor import Backoff, ChildSpec, Supervisor

pytestmark = pytest.mark.anyio

SCOPE = "https://eventhubs.azure.net/.default"
EXPIRED_LOGIN = (
    "ERROR: AADSTS700082: The refresh token has expired due to inactivity. "
    "Run 'az login' to set up account."
)


def cli_refresher(
    cache: TokenCache, inbox: MemoryObjectReceiveStream[RefreshRequest]
) -> TokenRefresherActor:
    """A refresher whose provider is the real Azure CLI credential."""
    provider = AzureCredentialProvider.azure_cli(cache=cache)
    return TokenRefresherActor(provider, cache, [SCOPE], inbox)


@asynccontextmanager
async def started(actor: TokenRefresherActor) -> AsyncIterator[None]:
    """Run `actor` until the block ends; entered once it reported started."""
    async with anyio.create_task_group() as tasks:
        with anyio.fail_after(10):
            await tasks.start(actor.run)
        yield
        tasks.cancel_scope.cancel()


async def test_the_first_token_comes_from_the_cli_before_started(fake_az: FakeAz) -> None:
    """By the time the refresher reports started, the CLI's token and expiry are cached."""
    fake_az.returns_token("az-token", expires_in=3600)
    cache = TokenCache()
    send, receive = anyio.create_memory_object_stream[RefreshRequest](4)
    with send, receive:
        async with started(cli_refresher(cache, receive)):
            entry = cache.get_entry(SCOPE)

            assert cache.get(SCOPE) == "az-token-1"
            assert entry is not None
            assert abs(entry.expires_on.timestamp() - (time.time() + 3600)) < 60
            assert fake_az.calls() == [
                "account get-access-token --output json --resource https://eventhubs.azure.net"
            ]


async def test_concurrent_requests_start_the_cli_once(fake_az: FakeAz) -> None:
    """Ten requests while a CLI call is in flight share it: one more `az` process, all done."""
    cache = TokenCache()
    send, receive = anyio.create_memory_object_stream[RefreshRequest](16)
    with send, receive:
        async with started(cli_refresher(cache, receive)):
            fake_az.hangs_for(0.3)
            requests = [RefreshRequest(SCOPE, reason=f"rejected #{n}") for n in range(10)]
            for request in requests:
                await send.send(request)
            with anyio.fail_after(10):
                for request in requests:
                    await request.done.wait()

            assert len(fake_az.calls()) == 2
            assert cache.get(SCOPE) == "az-token-2"


async def test_an_expired_cli_login_ends_the_run_as_auth_without_retrying(
    fake_az: FakeAz,
) -> None:
    """`az` refusing with an AADSTS error is AUTH: raised after one attempt, not retried."""
    fake_az.fails_with(EXPIRED_LOGIN)
    send, receive = anyio.create_memory_object_stream[RefreshRequest](4)
    with send, receive, pytest.raises(TokenRefreshError) as raised:
        with anyio.fail_after(10):
            await cli_refresher(TokenCache(), receive).run()

    assert raised.value.category is ErrorCategory.AUTH
    assert "AADSTS700082" in str(raised.value)
    assert len(fake_az.calls()) == 1


async def test_a_missing_cli_ends_the_run_as_permanent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without `az` on PATH the setup is wrong: PERMANENT at once, for a person to fix."""
    monkeypatch.setenv("PATH", str(tmp_path))
    send, receive = anyio.create_memory_object_stream[RefreshRequest](4)
    with send, receive, pytest.raises(TokenRefreshError) as raised:
        with anyio.fail_after(10):
            await cli_refresher(TokenCache(), receive).run()

    assert raised.value.category is ErrorCategory.PERMANENT


async def test_supervisor_restarts_the_refresher_after_auth_once_the_login_is_fixed(
    fake_az: FakeAz,
) -> None:
    """Under the supervisor, AUTH runs on_auth_failure (here: someone logs in) and restarts."""
    fake_az.fails_with(EXPIRED_LOGIN)
    cache = TokenCache()
    hook_calls: list[tuple[str, ErrorCategory]] = []

    def log_in_again(child: str, error: BaseException) -> None:
        hook_calls.append((child, getattr(error, "category", ErrorCategory.UNKNOWN)))
        fake_az.returns_token("az-token", expires_in=3600)

    send, receive = anyio.create_memory_object_stream[RefreshRequest](4)
    refresher = cli_refresher(cache, receive)
    root = Supervisor(
        [ChildSpec("token_refresher", refresher.run)],
        backoff=Backoff(base=0.0, max=0.0),
        on_auth_failure=log_in_again,
    )
    with send, receive:
        async with anyio.create_task_group() as tasks:
            with anyio.fail_after(10):
                await tasks.start(root.run)
            assert cache.get(SCOPE) == "az-token-2"
            assert hook_calls == [("token_refresher", ErrorCategory.AUTH)]
            assert root.stats().children["token_refresher"].restarts == 1
            tasks.cancel_scope.cancel()


async def test_a_child_rejected_for_auth_gets_a_fresh_token_before_its_restart(
    fake_az: FakeAz,
) -> None:
    """A consumer failing AUTH makes the hook ask the refresher; the restart sees a new token."""
    cache = TokenCache()
    tokens_seen: list[str | None] = []
    restarted = anyio.Event()

    async def consumer(*, task_status: TaskStatus[None]) -> None:
        tokens_seen.append(cache.get(SCOPE))
        task_status.started()
        if len(tokens_seen) == 1:
            raise TokenExpiredError("the broker rejected the OAUTHBEARER token")
        restarted.set()
        await anyio.sleep_forever()

    send, receive = anyio.create_memory_object_stream[RefreshRequest](4)

    async def refresh_for(child: str, error: BaseException) -> None:
        with anyio.move_on_after(5):
            await ask_for_fresh_token(send, SCOPE, f"{child} failed: {error}")

    root = Supervisor(
        [
            ChildSpec("token_refresher", cli_refresher(cache, receive).run),
            ChildSpec("consumer", consumer),
        ],
        backoff=Backoff(base=0.0, max=0.0),
        on_auth_failure=refresh_for,
    )
    with send, receive:
        async with anyio.create_task_group() as tasks:
            with anyio.fail_after(10):
                await tasks.start(root.run)
                await restarted.wait()
            assert tokens_seen == ["az-token-1", "az-token-2"]
            assert len(fake_az.calls()) == 2
            tasks.cancel_scope.cancel()

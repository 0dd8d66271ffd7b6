"""classify_exception on real azure-core and azure-identity exceptions.

HTTP errors come from azure-core's own pipeline talking to a local HTTP server, so
the status reaches the exception exactly as it would from an Azure service.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azure.core import PipelineClient
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest, HttpResponse
from azure.identity import CredentialUnavailableError, EnvironmentCredential

from core.errors import classify_exception
from core.types import ErrorCategory


class _StatusFromPath(BaseHTTPRequestHandler):
    """Answers GET /<status> with that status and an empty body."""

    def do_GET(self) -> None:
        self.send_response(int(self.path.strip("/")))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


def _client(base_url: str) -> PipelineClient[HttpRequest, HttpResponse]:
    transport = RequestsTransport(use_env_settings=False)
    return PipelineClient(base_url, transport=transport, retry_total=0)


@pytest.fixture(scope="module")
def http_error() -> Iterator[Callable[[int], HttpResponseError]]:
    """Returns the HttpResponseError azure-core raises for a response with the given status."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StatusFromPath)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    client = _client(base_url)

    def raise_for(status: int) -> HttpResponseError:
        response = client.send_request(HttpRequest("GET", f"{base_url}/{status}"))
        with pytest.raises(HttpResponseError) as info:
            response.raise_for_status()
        return info.value

    yield raise_for
    client.close()
    server.shutdown()
    server.server_close()


def test_client_authentication_error_is_auth() -> None:
    """azure-core's ClientAuthenticationError is AUTH, although it is also an HttpResponseError."""
    assert classify_exception(ClientAuthenticationError("token rejected")) is ErrorCategory.AUTH


def test_unavailable_credential_is_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CredentialUnavailableError azure-identity raises for missing configuration is AUTH."""
    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(CredentialUnavailableError) as info:
        EnvironmentCredential().get_token("https://eventhubs.azure.net/.default")
    assert classify_exception(info.value) is ErrorCategory.AUTH


@pytest.mark.parametrize(
    ("status", "category"),
    [
        (401, ErrorCategory.AUTH),
        (403, ErrorCategory.AUTH),
        (404, ErrorCategory.PERMANENT),
        (409, ErrorCategory.PERMANENT),
        (408, ErrorCategory.TRANSIENT),
        (429, ErrorCategory.TRANSIENT),
        (500, ErrorCategory.TRANSIENT),
        (503, ErrorCategory.TRANSIENT),
    ],
)
def test_http_response_error_is_classified_by_its_status(
    http_error: Callable[[int], HttpResponseError], status: int, category: ErrorCategory
) -> None:
    """An HttpResponseError from a real response takes the category of its HTTP status."""
    exc = http_error(status)
    assert exc.status_code == status
    assert classify_exception(exc) is category


def test_http_response_error_without_a_response_is_unknown() -> None:
    """An HttpResponseError that carries no status says nothing about a retry: UNKNOWN."""
    assert classify_exception(HttpResponseError("no response")) is ErrorCategory.UNKNOWN


def test_statusless_http_response_error_defers_to_its_cause() -> None:
    """A status-less HttpResponseError raised `from` a connection reset is TRANSIENT."""
    exc = HttpResponseError("no response")
    exc.__cause__ = ConnectionResetError("reset by peer")
    assert classify_exception(exc) is ErrorCategory.TRANSIENT


def test_refused_request_is_transient() -> None:
    """The ServiceRequestError azure-core raises when a connection is refused is TRANSIENT."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with _client(base_url) as client, pytest.raises(ServiceRequestError) as info:
        client.send_request(HttpRequest("GET", f"{base_url}/"))
    assert classify_exception(info.value) is ErrorCategory.TRANSIENT


def test_service_response_error_is_transient() -> None:
    """A response that broke off mid-way (ServiceResponseError) is TRANSIENT."""
    assert classify_exception(ServiceResponseError("connection closed")) is ErrorCategory.TRANSIENT


def test_other_azure_errors_are_unknown() -> None:
    """An azure-core error with no known meaning is UNKNOWN."""
    assert classify_exception(AzureError("something else")) is ErrorCategory.UNKNOWN

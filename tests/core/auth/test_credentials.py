"""AzureCredentialProvider over the real azure-identity credentials.

The Azure CLI is a scripted `az` on PATH; Entra ID is a local HTTPS server
(Azure AD itself cannot be reached from here); managed identity is App Service's
loopback endpoint. Everything between the provider and those endpoints is the
real azure-identity / MSAL code.
"""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from auth_fake_entra import (
    CERTIFICATE_PASSWORD,
    CLIENT_ID,
    CLIENT_SECRET,
    TENANT_ID,
    EntraBehaviour,
    FakeAppServiceIdentity,
    FakeEntra,
)
from auth_fakes import make_jwt
from azure.core.exceptions import ClientAuthenticationError
from clocks import ManualUtcClock
from fake_az import FakeAz

from core.auth.credentials import (
    STORAGE_SCOPE,
    AzureCredentialProvider,
    get_default_provider,
    kusto_scope_for,
    set_default_provider,
)
from core.auth.errors import CredentialConfigurationError, CredentialError
from core.auth.token_cache import TokenCache
from core.errors import AuthError, ConfigurationError, classify_exception
from core.types import ErrorCategory, TokenProvider

SCOPE = "https://eventhubs.azure.net/.default"


def real_time_clock() -> ManualUtcClock:
    """A hand-moved clock starting now, since `az` and Entra stamp expiries in real time."""
    return ManualUtcClock(datetime.now(UTC))


def spn_secret(entra: FakeEntra, secret: str = CLIENT_SECRET) -> AzureCredentialProvider:
    return AzureCredentialProvider.client_secret(
        TENANT_ID, CLIENT_ID, secret, **entra.credential_options()
    )


def spn_certificate(
    entra: FakeEntra, password: str = CERTIFICATE_PASSWORD
) -> AzureCredentialProvider:
    return AzureCredentialProvider.certificate(
        TENANT_ID,
        CLIENT_ID,
        entra.client_certificate.key_and_certificate_pem,
        password=password,
        **entra.credential_options(),
    )


# -- Azure CLI -------------------------------------------------------------------------------


def test_cli_token_comes_from_az_for_the_scopes_resource(fake_az: FakeAz) -> None:
    """get_token runs `az account get-access-token` for the scope's resource, returns its token."""
    provider = AzureCredentialProvider.azure_cli()
    assert provider.get_token(STORAGE_SCOPE) == "az-token-1"
    assert fake_az.calls() == [
        "account get-access-token --output json --resource https://storage.azure.com"
    ]


def test_cli_token_is_cached_while_fresh(fake_az: FakeAz) -> None:
    """The CLI caches nothing, so the provider's cache must: a second call runs no `az`."""
    provider = AzureCredentialProvider.azure_cli()
    assert provider.get_token(SCOPE) == provider.get_token(SCOPE) == "az-token-1"
    assert len(fake_az.calls()) == 1


def test_cli_token_is_fetched_again_inside_the_margin(fake_az: FakeAz) -> None:
    """Once the cached token is within the refresh margin, the next call runs `az` again."""
    clock = real_time_clock()
    fake_az.returns_token("az-token", expires_in=15 * 60)
    provider = AzureCredentialProvider.azure_cli(cache=TokenCache(clock=clock))
    assert provider.get_token(SCOPE) == "az-token-1"
    clock.advance(5 * 60 + 1)
    assert provider.get_token(SCOPE) == "az-token-2"


def test_failed_refresh_inside_the_margin_keeps_serving_the_valid_token(fake_az: FakeAz) -> None:
    """When a refresh inside the margin fails, the still-valid old token is returned."""
    clock = real_time_clock()
    fake_az.returns_token("az-token", expires_in=15 * 60)
    provider = AzureCredentialProvider.azure_cli(cache=TokenCache(clock=clock))
    provider.get_token(SCOPE)
    clock.advance(6 * 60)
    fake_az.is_not_logged_in()
    assert provider.get_token(SCOPE) == "az-token-1"
    assert len(fake_az.calls()) == 2


def test_failed_forced_refresh_raises_even_with_a_valid_token(fake_az: FakeAz) -> None:
    """force_refresh means the old token was rejected, so its failure is raised."""
    provider = AzureCredentialProvider.azure_cli()
    provider.get_token(SCOPE)
    fake_az.is_not_logged_in()
    with pytest.raises(CredentialError, match="run `az login`"):
        provider.get_token(SCOPE, force_refresh=True)


def test_failed_refresh_after_expiry_raises(fake_az: FakeAz) -> None:
    """Once the old token has expired, a failed refresh is raised."""
    clock = real_time_clock()
    fake_az.returns_token("az-token", expires_in=15 * 60)
    provider = AzureCredentialProvider.azure_cli(cache=TokenCache(clock=clock))
    provider.get_token(SCOPE)
    clock.advance(15 * 60 + 5)
    fake_az.is_not_logged_in()
    with pytest.raises(CredentialError, match="run `az login`"):
        provider.get_token(SCOPE)


def test_force_refresh_bypasses_a_fresh_cache(fake_az: FakeAz) -> None:
    """force_refresh=True fetches a new token even though the cached one is fresh."""
    provider = AzureCredentialProvider.azure_cli()
    provider.get_token(SCOPE)
    assert provider.get_token(SCOPE, force_refresh=True) == "az-token-2"
    assert provider.get_token(SCOPE) == "az-token-2"


def test_expiry_is_reported_as_az_gave_it(fake_az: FakeAz) -> None:
    """get_token_with_expiry returns az's expires_on as an aware UTC datetime."""
    fake_az.returns_token("az-token", expires_in=3000)
    before = datetime.now(UTC)
    entry = AzureCredentialProvider.azure_cli().get_token_with_expiry(SCOPE)
    assert entry.expires_on.tzinfo is UTC
    assert abs(entry.seconds_to_expiry(before) - 3000) < 5


def test_cli_tenant_is_passed_to_az(fake_az: FakeAz) -> None:
    """A tenant given to the provider reaches `az` as --tenant."""
    AzureCredentialProvider.azure_cli(tenant_id=TENANT_ID).get_token(SCOPE)
    assert fake_az.calls()[0].endswith(f"--tenant {TENANT_ID}")


def test_not_logged_in_says_run_az_login(fake_az: FakeAz) -> None:
    """A CLI nobody logged in to gives an AUTH CredentialError telling to run `az login`."""
    fake_az.is_not_logged_in()
    with pytest.raises(CredentialError, match="run `az login`") as caught:
        AzureCredentialProvider.azure_cli().get_token(SCOPE)
    assert caught.value.category is ErrorCategory.AUTH
    assert isinstance(caught.value.__cause__, ClientAuthenticationError)


@pytest.mark.usefixtures("no_az")
def test_missing_az_is_a_configuration_error() -> None:
    """Without `az` on PATH the error is PERMANENT and says to install it or switch method."""
    with pytest.raises(
        CredentialConfigurationError, match=r"not on PATH.*AZURE_AUTH_METHOD"
    ) as caught:
        AzureCredentialProvider.azure_cli().get_token(SCOPE)
    assert classify_exception(caught.value) is ErrorCategory.PERMANENT


def test_unexpected_az_output_is_an_auth_error(fake_az: FakeAz) -> None:
    """Output that is not a token is reported (sanitised by azure-identity) as AUTH."""
    fake_az.prints('{"accessToken": "half-a-token-value", "no_expiry": true}')
    with pytest.raises(CredentialError, match="Unexpected output from Azure CLI") as caught:
        AzureCredentialProvider.azure_cli().get_token(SCOPE)
    assert "half-a-token-value" not in str(caught.value)
    assert caught.value.category is ErrorCategory.AUTH


def test_aadsts_error_from_az_is_kept_in_the_message(fake_az: FakeAz) -> None:
    """An Entra error relayed by az keeps its AADSTS code, which people search for."""
    fake_az.fails_with("ERROR: AADSTS700082: The refresh token has expired due to inactivity.")
    with pytest.raises(CredentialError, match="AADSTS700082") as caught:
        AzureCredentialProvider.azure_cli().get_token(SCOPE)
    assert caught.value.category is ErrorCategory.AUTH


def test_hanging_az_is_transient(fake_az: FakeAz) -> None:
    """An `az` that outlives process_timeout is a TRANSIENT failure, not an auth one."""
    fake_az.hangs_for(3)
    with pytest.raises(CredentialError, match="retry later") as caught:
        AzureCredentialProvider.azure_cli(process_timeout=1).get_token(SCOPE)
    assert caught.value.category is ErrorCategory.TRANSIENT


def test_already_expired_token_is_refused_and_not_cached(fake_az: FakeAz) -> None:
    """A token that az reports as already expired raises and leaves the cache empty."""
    fake_az.returns_token("stale", expires_in=-60)
    provider = AzureCredentialProvider.azure_cli()
    with pytest.raises(CredentialError, match=r"expired at .*run `az login` again"):
        provider.get_token(SCOPE)
    assert provider.cache.get_entry(SCOPE) is None


def test_concurrent_callers_share_one_fetch(fake_az: FakeAz) -> None:
    """Threads asking for one scope at once run `az` once and all get its token."""
    fake_az.hangs_for(0.5)
    provider = AzureCredentialProvider.azure_cli()
    tokens: list[str] = []
    start = threading.Barrier(4)

    def ask() -> None:
        start.wait()
        tokens.append(provider.get_token(SCOPE))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tokens == ["az-token-1"] * 4
    assert len(fake_az.calls()) == 1


def test_burst_of_forced_refreshes_costs_one_fetch(fake_az: FakeAz) -> None:
    """Forced refreshes racing each other reuse the token one of them just fetched."""
    provider = AzureCredentialProvider.azure_cli()
    provider.get_token(SCOPE)
    fake_az.hangs_for(0.5)
    tokens: list[str] = []
    start = threading.Barrier(3)

    def force() -> None:
        start.wait()
        tokens.append(provider.get_token(SCOPE, force_refresh=True))

    threads = [threading.Thread(target=force) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tokens == ["az-token-2"] * 3
    assert len(fake_az.calls()) == 2


def test_cached_token_never_runs_az(fake_az: FakeAz) -> None:
    """cached_token answers from the cache only: None before a fetch, the token after."""
    provider = AzureCredentialProvider.azure_cli()
    assert provider.cached_token(SCOPE) is None
    provider.get_token(SCOPE)
    assert provider.cached_token(SCOPE) == "az-token-1"
    assert len(fake_az.calls()) == 1


def test_clear_cache_forces_the_next_fetch(fake_az: FakeAz) -> None:
    """clear_cache(scope) and clear_cache() make the next get_token fetch again."""
    provider = AzureCredentialProvider.azure_cli()
    provider.get_token(SCOPE)
    provider.get_token(STORAGE_SCOPE)
    provider.clear_cache(SCOPE)
    assert provider.cache.scopes() == [STORAGE_SCOPE]
    assert provider.get_token(SCOPE) == "az-token-3"
    provider.clear_cache()
    assert provider.get_token(STORAGE_SCOPE) == "az-token-4"


def test_storage_and_kusto_helpers_use_their_scopes(fake_az: FakeAz) -> None:
    """get_storage_token and get_kusto_token ask az for the storage and cluster resources."""
    provider = AzureCredentialProvider.azure_cli()
    provider.get_storage_token()
    provider.get_kusto_token("https://mycluster.westeurope.kusto.windows.net/")
    resources = [call.split("--resource ")[1] for call in fake_az.calls()]
    assert resources == [
        "https://storage.azure.com",
        "https://mycluster.westeurope.kusto.windows.net",
    ]
    assert provider.cache.scopes() == sorted(
        [STORAGE_SCOPE, "https://mycluster.westeurope.kusto.windows.net/.default"]
    )


@pytest.mark.parametrize(
    ("url", "scope"),
    [
        ("https://c.kusto.windows.net", "https://c.kusto.windows.net/.default"),
        ("https://C.Kusto.Windows.Net:443/db?x=1", "https://c.kusto.windows.net/.default"),
        (
            "  https://c.kusto.fabric.microsoft.com/  ",
            "https://c.kusto.fabric.microsoft.com/.default",
        ),
    ],
)
def test_kusto_scope_is_the_cluster_host(url: str, scope: str) -> None:
    """The Kusto scope is https://<host>/.default whatever path, port or case the URL has."""
    assert kusto_scope_for(url) == scope


@pytest.mark.parametrize("url", ["http://c.kusto.windows.net", "c.kusto.windows.net", "https://"])
def test_kusto_url_must_be_https(url: str) -> None:
    """A Kusto URL that is not https with a host is a configuration error."""
    with pytest.raises(CredentialConfigurationError, match="not an https URL"):
        kusto_scope_for(url)


@pytest.mark.parametrize("scope", ["", " ", "https://x/.default ", "two words"])
def test_malformed_scope_is_refused_before_any_fetch(fake_az: FakeAz, scope: str) -> None:
    """Empty or whitespace-bearing scopes are configuration errors and run no `az`."""
    with pytest.raises(CredentialConfigurationError, match="not a valid scope"):
        AzureCredentialProvider.azure_cli().get_token(scope)
    assert fake_az.calls() == []


def test_diagnostics_report_method_scopes_and_expiries(fake_az: FakeAz) -> None:
    """diagnostics() names the method, each cached scope, its expiry and seconds left."""
    clock = real_time_clock()
    provider = AzureCredentialProvider.azure_cli(tenant_id=TENANT_ID, cache=TokenCache(clock=clock))
    entry = provider.get_token_with_expiry(SCOPE)
    report = provider.diagnostics()
    assert report["method"] == "cli"
    assert report["tenant_id"] == TENANT_ID
    assert report["refresh_margin_seconds"] == 600.0
    assert report["cached_scopes"] == [SCOPE]
    token_report = report["tokens"][SCOPE]
    assert token_report["expires_on"] == entry.expires_on.isoformat()
    assert token_report["seconds_to_expiry"] == pytest.approx(entry.seconds_to_expiry(clock.now))
    assert token_report["fresh"] is True
    clock.advance(55 * 60)
    assert provider.diagnostics()["tokens"][SCOPE]["fresh"] is False


def test_provider_satisfies_the_token_provider_protocol(fake_az: FakeAz) -> None:
    """The provider is a core.types.TokenProvider, so callers can depend on the protocol."""
    provider: TokenProvider = AzureCredentialProvider.azure_cli()
    assert isinstance(provider, TokenProvider)
    assert provider.get_token(SCOPE) == "az-token-1"


# -- token file ------------------------------------------------------------------------------


def test_token_file_provider_serves_the_file_token(tmp_path: Path) -> None:
    """The token_file method returns the file's JWT with its exp as expiry."""
    exp = int(datetime.now(UTC).timestamp()) + 3600
    jwt = make_jwt({"exp": exp})
    (tmp_path / "token").write_text(jwt)
    provider = AzureCredentialProvider.token_file(tmp_path / "token")
    entry = provider.get_token_with_expiry(SCOPE)
    assert (entry.token, int(entry.expires_on.timestamp())) == (jwt, exp)
    assert provider.diagnostics()["token_file"] == str(tmp_path / "token")


def test_token_file_change_replaces_a_fresh_cached_token(tmp_path: Path) -> None:
    """A rewritten file is served at once, even though the cached token is still fresh."""
    exp = int(datetime.now(UTC).timestamp()) + 3600
    path = tmp_path / "token"
    path.write_text(make_jwt({"exp": exp, "n": 1}))
    provider = AzureCredentialProvider.token_file(path)
    provider.get_token(SCOPE)
    provider.get_token(STORAGE_SCOPE)
    rotated = make_jwt({"exp": exp + 600, "n": 2})
    path.write_text(rotated)
    assert provider.cached_token(STORAGE_SCOPE) is None
    assert provider.get_token(SCOPE) == rotated


def test_expired_token_file_tells_who_must_act(tmp_path: Path) -> None:
    """An expired token in the file raises an AUTH error pointing at the file's writer."""
    (tmp_path / "token").write_text(make_jwt({"exp": 1_000_000_000}))
    with pytest.raises(CredentialError, match="process that writes the token file") as caught:
        AzureCredentialProvider.token_file(tmp_path / "token").get_token(SCOPE)
    assert caught.value.category is ErrorCategory.AUTH


def test_short_lived_file_token_is_still_served(tmp_path: Path) -> None:
    """A valid token shorter-lived than the margin is returned (it is the best there is)."""
    jwt = make_jwt({"exp": int(datetime.now(UTC).timestamp()) + 120})
    (tmp_path / "token").write_text(jwt)
    provider = AzureCredentialProvider.token_file(tmp_path / "token")
    assert provider.get_token(SCOPE) == jwt
    assert provider.cached_token(SCOPE) is None


def test_out_of_range_expiry_is_an_auth_error(tmp_path: Path) -> None:
    """A token whose expiry no datetime can hold is refused as an AUTH CredentialError."""
    (tmp_path / "token").write_text('{"access_token": "x", "expires_on": 1e20}')
    with pytest.raises(CredentialError, match="unusable expiry") as caught:
        AzureCredentialProvider.token_file(tmp_path / "token").get_token(SCOPE)
    assert caught.value.category is ErrorCategory.AUTH


def test_token_file_errors_pass_through_unchanged(tmp_path: Path) -> None:
    """The token file's own CredentialError reaches the caller as raised (already actionable)."""
    with pytest.raises(CredentialError, match="does not exist"):
        AzureCredentialProvider.token_file(tmp_path / "missing").get_token(SCOPE)


# -- service principal with a secret ---------------------------------------------------------


def test_client_secret_token_comes_from_the_token_endpoint(fake_entra: FakeEntra) -> None:
    """A client-credentials request with our client id, secret and scope yields Entra's token."""
    token = spn_secret(fake_entra).get_token(SCOPE)
    claims = jwt.decode(
        token,
        fake_entra.signing_key.public_key(),
        algorithms=["RS256"],
        audience=SCOPE.removesuffix("/.default"),
    )
    assert claims["appid"] == CLIENT_ID
    (request,) = fake_entra.token_requests
    assert request["grant_type"] == "client_credentials"
    assert request["client_id"] == CLIENT_ID
    assert request["scope"] == SCOPE
    assert request["client_secret"] == CLIENT_SECRET


def test_client_secret_token_is_cached(fake_entra: FakeEntra) -> None:
    """A second get_token for the scope sends no request."""
    provider = spn_secret(fake_entra)
    assert provider.get_token(SCOPE) == provider.get_token(SCOPE)
    assert len(fake_entra.token_requests) == 1


def test_force_refresh_gets_past_msals_own_cache(fake_entra: FakeEntra) -> None:
    """force_refresh sends a new token request although MSAL itself holds a valid token."""
    provider = spn_secret(fake_entra)
    first = provider.get_token(SCOPE)
    second = provider.get_token(SCOPE, force_refresh=True)
    assert first != second
    assert len(fake_entra.token_requests) == 2


def test_refresh_inside_the_margin_gets_past_msals_cache(fake_entra: FakeEntra) -> None:
    """Inside our margin MSAL hands back its cached token; a new credential gets a fresh one."""
    clock = real_time_clock()
    provider = AzureCredentialProvider.client_secret(
        TENANT_ID,
        CLIENT_ID,
        CLIENT_SECRET,
        cache=TokenCache(clock=clock),
        **fake_entra.credential_options(),
    )
    first = provider.get_token(SCOPE)
    clock.advance(51 * 60)
    fake_entra.behaviour = EntraBehaviour(expires_in=7200)
    entry = provider.get_token_with_expiry(SCOPE)
    assert entry.token != first
    assert entry.is_fresh(clock.now, provider.cache.refresh_margin)
    assert len(fake_entra.token_requests) == 2


def test_rejected_secret_is_an_auth_error_with_the_aadsts_code(fake_entra: FakeEntra) -> None:
    """Entra rejecting the secret gives an AUTH CredentialError carrying AADSTS7000215."""
    with pytest.raises(CredentialError, match="AADSTS7000215") as caught:
        spn_secret(fake_entra, secret="wrong-secret").get_token(SCOPE)
    assert caught.value.category is ErrorCategory.AUTH
    assert isinstance(caught.value.__cause__, ClientAuthenticationError)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_token_endpoint_outage_is_transient(fake_entra: FakeEntra, status: int) -> None:
    """A 5xx or 429 from the token endpoint is TRANSIENT: retry later, refreshing won't help."""
    fake_entra.behaviour = EntraBehaviour(status=status, error={"error": "temporarily_unavailable"})
    with pytest.raises(CredentialError, match="retry later") as caught:
        spn_secret(fake_entra).get_token(f"https://outage-{status}/.default")
    assert classify_exception(caught.value) is ErrorCategory.TRANSIENT


def test_bad_request_from_the_token_endpoint_is_auth(fake_entra: FakeEntra) -> None:
    """A 400 OAuth error (e.g. an unknown scope) is AUTH, not TRANSIENT."""
    fake_entra.behaviour = EntraBehaviour(
        status=400,
        error={"error": "invalid_scope", "error_description": "AADSTS70011: invalid scope."},
    )
    with pytest.raises(CredentialError, match="AADSTS70011") as caught:
        spn_secret(fake_entra).get_token("https://unknown-resource/.default")
    assert caught.value.category is ErrorCategory.AUTH


def test_unreachable_token_endpoint_is_transient() -> None:
    """A refused connection is TRANSIENT, though azure-identity reports it as an auth error."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = AzureCredentialProvider.client_secret(
        TENANT_ID,
        CLIENT_ID,
        CLIENT_SECRET,
        authority=f"https://127.0.0.1:{port}",
        disable_instance_discovery=True,
        retry_total=0,
    )
    with pytest.raises(CredentialError) as caught:
        provider.get_token(SCOPE)
    assert caught.value.category is ErrorCategory.TRANSIENT


@pytest.mark.parametrize(
    ("tenant", "client", "secret", "missing"),
    [
        ("", CLIENT_ID, CLIENT_SECRET, "tenant_id"),
        (TENANT_ID, "", CLIENT_SECRET, "client_id"),
        (TENANT_ID, CLIENT_ID, "", "client_secret"),
    ],
)
def test_empty_service_principal_fields_are_named(
    tenant: str, client: str, secret: str, missing: str
) -> None:
    """An empty tenant, client id or secret is a configuration error naming the field."""
    with pytest.raises(CredentialConfigurationError, match=f"{missing} must not be empty"):
        AzureCredentialProvider.client_secret(tenant, client, secret)


def test_plain_http_authority_is_refused_at_construction() -> None:
    """azure-identity insists on https authorities; the provider reports it at setup time."""
    with pytest.raises(CredentialConfigurationError, match="https") as caught:
        AzureCredentialProvider.client_secret(
            TENANT_ID, CLIENT_ID, CLIENT_SECRET, authority="http://127.0.0.1:1"
        )
    assert isinstance(caught.value, ConfigurationError)


def test_malformed_tenant_is_a_configuration_error() -> None:
    """A tenant id with invalid characters fails construction with a configuration error."""
    with pytest.raises(CredentialConfigurationError, match="cannot be set up"):
        AzureCredentialProvider.client_secret("not a tenant!", CLIENT_ID, CLIENT_SECRET)


def test_service_principal_diagnostics_show_ids_not_the_secret(fake_entra: FakeEntra) -> None:
    """diagnostics() shows tenant, client id and authority, never the secret or token."""
    provider = spn_secret(fake_entra)
    token = provider.get_token(SCOPE)
    report = provider.diagnostics()
    assert (report["method"], report["tenant_id"], report["client_id"]) == (
        "client_secret",
        TENANT_ID,
        CLIENT_ID,
    )
    assert report["authority"] == fake_entra.authority
    assert CLIENT_SECRET not in repr(report)
    assert token not in repr(report)


# -- service principal with a certificate ----------------------------------------------------


def test_certificate_assertion_is_signed_with_our_key(fake_entra: FakeEntra) -> None:
    """MSAL signs a client assertion with the (password-protected) key; Entra's check passes."""
    provider = spn_certificate(fake_entra)
    claims = jwt.decode(provider.get_token(SCOPE), options={"verify_signature": False})
    assert claims["aud"] == SCOPE.removesuffix("/.default")
    (request,) = fake_entra.token_requests
    assert request["client_assertion_type"].endswith("jwt-bearer")
    assert "client_secret" not in request
    assert provider.diagnostics()["certificate_path"] == str(
        fake_entra.client_certificate.key_and_certificate_pem
    )


def test_certificate_force_refresh_requests_a_new_token(fake_entra: FakeEntra) -> None:
    """force_refresh on the certificate method also gets past MSAL's cache."""
    provider = spn_certificate(fake_entra)
    provider.get_token(SCOPE)
    provider.get_token(SCOPE, force_refresh=True)
    assert len(fake_entra.token_requests) == 2


def test_wrong_certificate_password_is_a_configuration_error(fake_entra: FakeEntra) -> None:
    """A password that does not open the key fails at construction as PERMANENT."""
    with pytest.raises(CredentialConfigurationError, match="cannot be set up") as caught:
        spn_certificate(fake_entra, password="not-the-password")
    assert caught.value.category is ErrorCategory.PERMANENT


def test_missing_certificate_file_names_the_variable(tmp_path: Path) -> None:
    """A certificate path that does not exist says to check AZURE_CLIENT_CERTIFICATE_PATH."""
    with pytest.raises(CredentialConfigurationError, match="AZURE_CLIENT_CERTIFICATE_PATH"):
        AzureCredentialProvider.certificate(TENANT_ID, CLIENT_ID, tmp_path / "absent.pem")


def test_file_that_is_not_a_certificate_is_a_configuration_error(tmp_path: Path) -> None:
    """A file without a PEM/PKCS12 certificate and key fails construction clearly."""
    (tmp_path / "cert.pem").write_text("this is not a certificate")
    with pytest.raises(CredentialConfigurationError, match="cannot be set up"):
        AzureCredentialProvider.certificate(TENANT_ID, CLIENT_ID, tmp_path / "cert.pem")


# -- managed identity, DefaultAzureCredential -------------------------------------------------


def test_managed_identity_through_the_app_service_endpoint(
    app_service_identity: FakeAppServiceIdentity,
) -> None:
    """A user-assigned managed identity asks the endpoint with its header and client id."""
    provider = AzureCredentialProvider.managed_identity("33333333-3333-3333-3333-333333333333")
    assert provider.get_token(STORAGE_SCOPE) == "mi-token-1"
    ((path, header),) = app_service_identity.requests
    assert header == app_service_identity.header_secret
    assert "resource=https://storage.azure.com" in path
    assert "client_id=33333333-3333-3333-3333-333333333333" in path
    assert provider.diagnostics()["client_id"] == "33333333-3333-3333-3333-333333333333"


def test_default_credential_chain_reaches_the_cli(fake_az: FakeAz) -> None:
    """DefaultAzureCredential (managed identity excluded: no IMDS here) finds the az login."""
    provider = AzureCredentialProvider.default(exclude_managed_identity_credential=True)
    assert provider.get_token(SCOPE) == "az-token-1"
    assert provider.method == "default"


@pytest.mark.usefixtures("no_az")
def test_default_credential_with_nothing_available_is_auth() -> None:
    """When no credential in the chain can act, the error is AUTH and lists what was tried."""
    provider = AzureCredentialProvider.default(exclude_managed_identity_credential=True)
    with pytest.raises(CredentialError, match="DefaultAzureCredential") as caught:
        provider.get_token(SCOPE)
    assert "AzureCliCredential: Azure CLI not found on path" in str(caught.value)
    assert isinstance(caught.value, AuthError)
    assert caught.value.category is ErrorCategory.AUTH


# -- module default provider -----------------------------------------------------------------


def test_default_provider_is_built_once_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """get_default_provider builds from os.environ on first use and then returns that one."""
    monkeypatch.setenv("AZURE_TOKEN_FILE", str(tmp_path / "token"))
    set_default_provider(None)
    try:
        first = get_default_provider()
        assert first.method == "token_file"
        assert get_default_provider() is first
    finally:
        set_default_provider(None)


def test_set_default_provider_replaces_it(fake_az: FakeAz) -> None:
    """set_default_provider installs a provider that get_default_provider then returns."""
    provider = AzureCredentialProvider.azure_cli()
    set_default_provider(provider)
    try:
        assert get_default_provider() is provider
    finally:
        set_default_provider(None)

"""AzureCredentialProvider.from_env: which method an environment selects, and what it lacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from auth_fake_entra import CERTIFICATE_PASSWORD, CLIENT_ID, CLIENT_SECRET, TENANT_ID, FakeEntra
from fake_az import FakeAz

from core.auth.credentials import AUTH_METHODS, AzureCredentialProvider
from core.auth.errors import CredentialConfigurationError
from core.types import ErrorCategory

SECRET_ENV = {
    "AZURE_TENANT_ID": TENANT_ID,
    "AZURE_CLIENT_ID": CLIENT_ID,
    "AZURE_CLIENT_SECRET": CLIENT_SECRET,
}


def certificate_env(entra: FakeEntra) -> dict[str, str]:
    return {
        "AZURE_TENANT_ID": TENANT_ID,
        "AZURE_CLIENT_ID": CLIENT_ID,
        "AZURE_CLIENT_CERTIFICATE_PATH": str(entra.client_certificate.key_and_certificate_pem),
        "AZURE_CLIENT_CERTIFICATE_PASSWORD": CERTIFICATE_PASSWORD,
    }


def test_empty_environment_selects_default_azure_credential() -> None:
    """With no Azure variables the provider uses DefaultAzureCredential."""
    assert AzureCredentialProvider.from_env({}).method == "default"


def test_token_file_variable_selects_the_token_file(tmp_path: Path) -> None:
    """AZURE_TOKEN_FILE selects the token file method and names the path in diagnostics."""
    provider = AzureCredentialProvider.from_env({"AZURE_TOKEN_FILE": str(tmp_path / "t")})
    assert provider.method == "token_file"
    assert provider.diagnostics()["token_file"] == str(tmp_path / "t")


def test_secret_variables_select_the_service_principal() -> None:
    """Tenant, client id and secret select the client-secret method with those ids."""
    provider = AzureCredentialProvider.from_env(SECRET_ENV)
    report = provider.diagnostics()
    assert (report["method"], report["tenant_id"], report["client_id"]) == (
        "client_secret",
        TENANT_ID,
        CLIENT_ID,
    )


@pytest.mark.parametrize("missing", ["AZURE_TENANT_ID", "AZURE_CLIENT_ID"])
def test_secret_without_its_companions_names_the_missing_variable(missing: str) -> None:
    """A secret without tenant or client id is a PERMANENT error naming the missing variable."""
    environ = {name: value for name, value in SECRET_ENV.items() if name != missing}
    with pytest.raises(CredentialConfigurationError, match=f"{missing} is missing") as caught:
        AzureCredentialProvider.from_env(environ)
    assert caught.value.category is ErrorCategory.PERMANENT


def test_certificate_variables_select_the_certificate(fake_entra: FakeEntra) -> None:
    """A certificate path (with its password) selects the certificate method."""
    provider = AzureCredentialProvider.from_env(certificate_env(fake_entra))
    assert provider.method == "certificate"
    assert provider.diagnostics()["certificate_path"] == str(
        fake_entra.client_certificate.key_and_certificate_pem
    )


def test_token_file_wins_over_service_principal(tmp_path: Path) -> None:
    """AZURE_TOKEN_FILE takes precedence over service principal variables."""
    environ = {**SECRET_ENV, "AZURE_TOKEN_FILE": str(tmp_path / "t")}
    assert AzureCredentialProvider.from_env(environ).method == "token_file"


def test_secret_wins_over_certificate(fake_entra: FakeEntra) -> None:
    """With both a secret and a certificate path, the secret is used."""
    environ = {**certificate_env(fake_entra), "AZURE_CLIENT_SECRET": CLIENT_SECRET}
    assert AzureCredentialProvider.from_env(environ).method == "client_secret"


def test_explicit_method_wins_over_inference(tmp_path: Path) -> None:
    """AZURE_AUTH_METHOD=cli is obeyed although token file and secret variables are set."""
    environ = {**SECRET_ENV, "AZURE_TOKEN_FILE": str(tmp_path / "t"), "AZURE_AUTH_METHOD": "cli"}
    provider = AzureCredentialProvider.from_env(environ)
    assert provider.method == "cli"
    assert provider.diagnostics()["tenant_id"] == TENANT_ID


def test_explicit_cli_method_fetches_through_az(fake_az: FakeAz) -> None:
    """AZURE_AUTH_METHOD=cli yields a provider whose tokens come from `az`."""
    provider = AzureCredentialProvider.from_env({"AZURE_AUTH_METHOD": "cli"})
    assert provider.get_token("https://storage.azure.com/.default") == "az-token-1"


@pytest.mark.parametrize(
    ("given", "method"),
    [
        ("spn", "client_secret"),
        ("service_principal", "client_secret"),
        ("secret", "client_secret"),
        ("az", "cli"),
        ("azure_cli", "cli"),
        ("CLI", "cli"),
        (" default ", "default"),
        ("msi", "managed_identity"),
        ("managed_identity", "managed_identity"),
        ("file", "token_file"),
    ],
)
def test_method_names_and_aliases(tmp_path: Path, given: str, method: str) -> None:
    """Every documented method name and alias, in any case, selects its method."""
    environ = {**SECRET_ENV, "AZURE_TOKEN_FILE": str(tmp_path / "t"), "AZURE_AUTH_METHOD": given}
    assert AzureCredentialProvider.from_env(environ).method == method


def test_unknown_method_lists_the_valid_ones() -> None:
    """An unknown AZURE_AUTH_METHOD is a configuration error listing every valid method."""
    with pytest.raises(
        CredentialConfigurationError, match="AZURE_AUTH_METHOD='kerberos'"
    ) as caught:
        AzureCredentialProvider.from_env({"AZURE_AUTH_METHOD": "kerberos"})
    for method in AUTH_METHODS:
        assert method in str(caught.value)


@pytest.mark.parametrize(
    ("method", "missing"),
    [
        ("token_file", "AZURE_TOKEN_FILE"),
        ("client_secret", "AZURE_TENANT_ID"),
        ("certificate", "AZURE_TENANT_ID"),
    ],
)
def test_explicit_method_needs_its_variables(method: str, missing: str) -> None:
    """An explicit method without its variables names the first missing one."""
    with pytest.raises(CredentialConfigurationError, match=f"{missing} is missing"):
        AzureCredentialProvider.from_env({"AZURE_AUTH_METHOD": method})


def test_empty_values_count_as_unset(tmp_path: Path) -> None:
    """Variables set to the empty string are ignored when choosing a method."""
    environ = {"AZURE_TOKEN_FILE": "", "AZURE_CLIENT_SECRET": "", "AZURE_AUTH_METHOD": ""}
    assert AzureCredentialProvider.from_env(environ).method == "default"


def test_client_id_selects_a_user_assigned_managed_identity() -> None:
    """With AZURE_AUTH_METHOD=managed_identity, AZURE_CLIENT_ID picks the identity."""
    environ = {"AZURE_AUTH_METHOD": "managed_identity", "AZURE_CLIENT_ID": CLIENT_ID}
    assert AzureCredentialProvider.from_env(environ).diagnostics()["client_id"] == CLIENT_ID


def test_authority_host_reaches_the_service_principal() -> None:
    """AZURE_AUTHORITY_HOST (sovereign clouds) is passed to the service principal."""
    environ = {**SECRET_ENV, "AZURE_AUTHORITY_HOST": "login.chinacloudapi.cn"}
    report = AzureCredentialProvider.from_env(environ).diagnostics()
    assert report["authority"] == "login.chinacloudapi.cn"


def test_insecure_authority_host_is_refused() -> None:
    """An http:// AZURE_AUTHORITY_HOST fails at setup, before any secret is sent."""
    environ = {**SECRET_ENV, "AZURE_AUTHORITY_HOST": "http://login.example"}
    with pytest.raises(CredentialConfigurationError, match="https"):
        AzureCredentialProvider.from_env(environ)


def test_missing_certificate_file_from_env_names_the_variable(tmp_path: Path) -> None:
    """A certificate path that does not exist names AZURE_CLIENT_CERTIFICATE_PATH."""
    environ = {
        "AZURE_TENANT_ID": TENANT_ID,
        "AZURE_CLIENT_ID": CLIENT_ID,
        "AZURE_CLIENT_CERTIFICATE_PATH": str(tmp_path / "none.pem"),
    }
    with pytest.raises(CredentialConfigurationError, match="AZURE_CLIENT_CERTIFICATE_PATH"):
        AzureCredentialProvider.from_env(environ)

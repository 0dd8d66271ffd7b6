"""Stand-ins for Microsoft Entra ID's token endpoint (HTTPS) and a managed identity endpoint.

Azure AD itself cannot be reached from here, so this server answers the two
requests MSAL makes for a service principal (tenant discovery and the
client-credentials token request) the way Entra does. Everything on the client
side (azure-identity, MSAL, the HTTPS transport, certificate assertions) is real.
The certificate credential's client assertion is verified with the certificate's
public key, so a test passing means MSAL really signed with our key.

Access tokens are real RS256 JWTs, shaped like Entra's app-only tokens: `aud` is the
requested scope without `/.default`, `iss` the tenant's v2.0 issuer, `sub`/`appid` the
client, `exp` `expires_in` seconds ahead (or `EntraBehaviour.token_lifetime_s`, to issue
a token that is already expired while the response says otherwise). They are signed with
a key of this server that `jwks()` (and `GET /<tenant>/discovery/v2.0/keys`) publishes,
so a broker can validate them as it would validate Entra's.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

TENANT_ID = "00000000-0000-0000-0000-0000000000aa"
CLIENT_ID = "11111111-1111-1111-1111-1111111111bb"
CLIENT_SECRET = "s3cr3t-VALUE-that-must-never-leak"
CERTIFICATE_PASSWORD = "p4ssw0rd-VALUE-that-must-never-leak"


@dataclass
class EntraBehaviour:
    """What the next token requests get; tests change it between calls."""

    status: int = 200
    expires_in: int = 3600
    error: dict[str, str] = field(default_factory=dict)
    echo_secret_in_errors: bool = False
    """Put the submitted client secret into error descriptions (a leak to be redacted)."""
    token_lifetime_s: int | None = None
    """Seconds from now to the JWT's own `exp`; None: `expires_in` (negative: expired)."""


@dataclass
class SelfSignedCertificate:
    """A key and certificate, also written as PEM files for servers and credentials."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    certificate_pem: Path
    key_and_certificate_pem: Path


def make_certificate(
    directory: Path, name: str, password: str | None = None
) -> SelfSignedCertificate:
    """A fresh RSA key with a self-signed certificate valid for 127.0.0.1 and localhost."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    certificate_path = directory / f"{name}.crt.pem"
    certificate_path.write_bytes(cert_pem)
    combined_path = directory / f"{name}.key-and-crt.pem"
    combined_path.write_bytes(key_pem + cert_pem)
    return SelfSignedCertificate(key, certificate, certificate_path, combined_path)


class FakeEntra:
    """The HTTPS server plus what it has seen; `authority` is what credentials are given."""

    def __init__(self, tls: SelfSignedCertificate, client_certificate: SelfSignedCertificate):
        self.tls = tls
        self.client_certificate = client_certificate
        self.behaviour = EntraBehaviour()
        self.token_requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._issued = 0
        self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = "fake-entra-signing-key"
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.key_and_certificate_pem)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def authority(self) -> str:
        """The authority URL to give azure-identity credentials."""
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def credential_options(self) -> dict[str, Any]:
        """azure-identity keyword options that point a credential at this server, fast."""
        return {
            "authority": self.authority,
            "disable_instance_discovery": True,
            "connection_verify": str(self.tls.certificate_pem),
            "retry_total": 0,
        }

    @property
    def issuer(self) -> str:
        """The `iss` of the tokens, as Entra's v2.0 endpoint names its tenant."""
        return f"{self.authority}/{TENANT_ID}/v2.0"

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set that verifies the tokens (public key only)."""
        key = jwt.algorithms.RSAAlgorithm.to_jwk(self.signing_key.public_key(), as_dict=True)
        return {"keys": [{**key, "kid": self.key_id, "use": "sig", "alg": "RS256"}]}

    def reset(self) -> None:
        """Forget requests and go back to issuing tokens."""
        with self._lock:
            self.behaviour = EntraBehaviour()
            self.token_requests.clear()

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def _answer_token_request(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.token_requests.append(form)
            behaviour = self.behaviour
            self._issued += 1
            issued = self._issued
        if behaviour.status != 200:
            return behaviour.status, behaviour.error
        if not self._client_is_authentic(form):
            echoed = f" Got {form.get('client_secret')}" if behaviour.echo_secret_in_errors else ""
            return 401, {
                "error": "invalid_client",
                "error_description": f"AADSTS7000215: Invalid client secret provided.{echoed}",
            }
        token = self._access_token(form, behaviour, issued)
        return 200, {
            "token_type": "Bearer",
            "expires_in": behaviour.expires_in,
            "access_token": token,
        }

    def _access_token(self, form: dict[str, str], behaviour: EntraBehaviour, issued: int) -> str:
        now = int(time.time())
        lifetime = behaviour.expires_in
        if behaviour.token_lifetime_s is not None:
            lifetime = behaviour.token_lifetime_s
        scope = form.get("scope", "")
        claims = {
            "aud": scope.removesuffix("/.default"),
            "iss": self.issuer,
            "sub": form.get("client_id", ""),
            "appid": form.get("client_id", ""),
            "tid": TENANT_ID,
            "iat": now,
            "nbf": now - 60,
            "exp": now + lifetime,
            "uti": f"token-{issued}",
        }
        return jwt.encode(claims, self.signing_key, algorithm="RS256", headers={"kid": self.key_id})

    def _client_is_authentic(self, form: dict[str, str]) -> bool:
        if form.get("client_id") != CLIENT_ID:
            return False
        if "client_secret" in form:
            return form["client_secret"] == CLIENT_SECRET
        assertion = form.get("client_assertion")
        if assertion is None:
            return False
        try:
            claims = jwt.decode(
                assertion,
                self.client_certificate.certificate.public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256"],
                audience=f"{self.authority}/{TENANT_ID}/oauth2/v2.0/token",
            )
        except jwt.PyJWTError:
            return False
        return bool(claims.get("iss") == CLIENT_ID)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        entra = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet."""

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                tenant = path.strip("/").split("/")[0]
                if path.endswith("/.well-known/openid-configuration"):
                    base = f"{entra.authority}/{tenant}"
                    self._send(
                        200,
                        {
                            "token_endpoint": f"{base}/oauth2/v2.0/token",
                            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                            "issuer": f"{base}/v2.0",
                            "jwks_uri": f"{base}/discovery/v2.0/keys",
                        },
                    )
                elif path.endswith("/discovery/v2.0/keys"):
                    self._send(200, entra.jwks())
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                form = {name: values[0] for name, values in parse_qs(body).items()}
                status, payload = entra._answer_token_request(form)
                self._send(status, payload)

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


class FakeAppServiceIdentity:
    """An App Service managed identity endpoint (IDENTITY_ENDPOINT) on 127.0.0.1, plain HTTP.

    Managed identity needs an Azure host; App Service's variant is an HTTP endpoint
    named by environment variables, which this serves, so ManagedIdentityCredential
    runs unmodified. (The VM variant, IMDS at 169.254.169.254, is not reachable here.)
    """

    header_secret = "identity-header-VALUE-that-must-never-leak"

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        """The IDENTITY_ENDPOINT value."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/msi/token"

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        identity = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet."""

            def do_GET(self) -> None:
                identity.requests.append((self.path, self.headers.get("X-IDENTITY-HEADER")))
                if self.headers.get("X-IDENTITY-HEADER") != identity.header_secret:
                    status, payload = 401, {"error": "unauthorized"}
                else:
                    query = parse_qs(urlsplit(self.path).query)
                    status, payload = (
                        200,
                        {
                            "access_token": f"mi-token-{len(identity.requests)}",
                            "expires_on": str(int(datetime.datetime.now().timestamp()) + 3600),
                            "resource": query["resource"][0],
                            "token_type": "Bearer",
                        },
                    )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@contextmanager
def running_fake_entra(directory: Path) -> Iterator[FakeEntra]:
    """A started FakeEntra with fresh certificates under `directory`; stopped on exit."""
    tls = make_certificate(directory, "entra-tls")
    client = make_certificate(directory, "service-principal", password=CERTIFICATE_PASSWORD)
    entra = FakeEntra(tls, client)
    entra.start()
    try:
        yield entra
    finally:
        entra.stop()

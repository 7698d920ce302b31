"""TLS: bad certificates are refused by default, with an error that says why.

A TLS server in a thread presents, in turn: a certificate of a trusted CA for
127.0.0.1 (the control: it must work), a self-signed certificate (made with
the cryptography package), one for another host name, an expired one, and
one of a CA nobody trusts (made with trustme). The test CA is installed as the
"system" trust store (``SSL_CERT_FILE``, read by the default context), so the
default ``tls=None`` path is what is tested, and each refusal happens for its
own reason, not merely because the CA is unknown. Turning verification off is
possible only with an SSLContext the user builds: there is no verify flag.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import warmline._tls
from warmline import ConnectError, InvalidRequest

from .faultproxy import FLAVOURS, Flavour, PoolDriver
from .rawserver import OK_SMALL, Handler, RawServer, read_request


@dataclass
class Certs:
    """PEM files of one server certificate chain and its key."""

    chain: Path
    key: Path


def write_leaf(leaf: trustme.LeafCert, directory: Path, name: str) -> Certs:
    chain, key = directory / f"{name}.pem", directory / f"{name}.key"
    leaf.cert_chain_pems[0].write_to_path(str(chain))
    leaf.private_key_pem.write_to_path(str(key))
    return Certs(chain, key)


def self_signed(directory: Path) -> Certs:
    """A leaf certificate for 127.0.0.1 that signs itself (cryptography)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certs = Certs(directory / "self.pem", directory / "self.key")
    certs.chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certs.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certs


@dataclass
class PKI:
    ca_file: Path
    certs: dict[str, Certs]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    now = datetime.datetime.now(datetime.UTC)
    certs = {
        "good": write_leaf(ca.issue_cert("127.0.0.1", "localhost"), directory, "good"),
        "wrong-host": write_leaf(ca.issue_cert("wrong.example"), directory, "wrong"),
        "expired": write_leaf(
            ca.issue_cert(
                "127.0.0.1",
                not_before=now - datetime.timedelta(days=30),
                not_after=now - datetime.timedelta(days=1),
            ),
            directory,
            "expired",
        ),
        "untrusted-ca": write_leaf(trustme.CA().issue_cert("127.0.0.1"), directory, "other"),
        "self-signed": self_signed(directory),
    }
    return PKI(ca_file, certs)


@pytest.fixture
def system_trusts_test_ca(pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the default (system) trust store the test CA, for this test only."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    monkeypatch.setattr(warmline._tls, "_default_context", None)


def tls_handler(certs: Certs) -> Handler:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(certs.chain), str(certs.key))

    def handler(conn: socket.socket, index: int) -> None:
        conn.settimeout(5)
        with ctx.wrap_socket(conn, server_side=True) as tls:  # a refused handshake raises
            while read_request(tls) is not None:
                tls.sendall(OK_SMALL)

    return handler


@pytest.fixture
def tls_server(request: pytest.FixtureRequest, pki: PKI) -> Iterator[RawServer]:
    with RawServer(tls_handler(pki.certs[request.param])) as server:
        yield server


def https(server: RawServer) -> str:
    return f"https://127.0.0.1:{server.port}"


REASONS = {
    "self-signed": "self[- ]signed certificate",
    "wrong-host": "mismatch",  # OpenSSL: "IP address mismatch" / "Hostname mismatch"
    "expired": "certificate has expired",
    "untrusted-ca": "unable to get local issuer certificate",
}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("tls_server", ["good"], indirect=True)
def test_a_good_certificate_works_by_default(
    flavour: Flavour, tls_server: RawServer, system_trusts_test_ca: None
) -> None:
    # The control: with the test CA as the system store, the default path works,
    # so the refusals below are for the reasons they give.
    with PoolDriver(flavour, https(tls_server), connections=1) as pool:
        assert pool.get("/", timeout=5).content == b"ok"


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("tls_server", list(REASONS), indirect=True)
def test_bad_certificate_is_refused_by_default_saying_why(
    flavour: Flavour,
    tls_server: RawServer,
    request: pytest.FixtureRequest,
    system_trusts_test_ca: None,
) -> None:
    kind = request.node.callspec.params["tls_server"]
    with pytest.raises(ConnectError) as info:
        PoolDriver(flavour, https(tls_server), connections=1, connect_timeout=5)
    message = str(info.value)
    assert "TLS certificate verification failed" in message
    assert info.match(REASONS[kind])
    # The ssl error is chained for whoever needs the details.
    cause = info.value.__cause__
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__
    assert isinstance(cause, ssl.SSLCertVerificationError)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("tls_server", ["wrong-host", "expired"], indirect=True)
def test_a_users_verifying_context_refuses_too(
    flavour: Flavour, tls_server: RawServer, pki: PKI
) -> None:
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    with pytest.raises(ConnectError, match="TLS certificate verification failed"):
        PoolDriver(flavour, https(tls_server), connections=1, tls=ctx)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("tls_server", list(REASONS), indirect=True)
def test_verification_off_only_through_an_explicit_context(
    flavour: Flavour, tls_server: RawServer
) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with PoolDriver(flavour, https(tls_server), connections=1, tls=ctx) as pool:
        assert pool.get("/", timeout=5).content == b"ok"


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("tls_server", ["self-signed"], indirect=True)
def test_there_is_no_verify_flag(flavour: Flavour, tls_server: RawServer) -> None:
    with pytest.raises(TypeError):
        PoolDriver(flavour, https(tls_server), connections=1, verify=False)
    with pytest.raises(InvalidRequest):  # TLS off must be said in the URL
        PoolDriver(flavour, https(tls_server), connections=1, tls=False)
    with pytest.raises(InvalidRequest):  # and a context never upgrades http:// silently
        PoolDriver(
            flavour,
            f"http://127.0.0.1:{tls_server.port}",
            connections=1,
            tls=ssl.create_default_context(),
        )


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("tls_server", ["expired"], indirect=True)
def test_connect_error_names_the_origin_once(
    flavour: Flavour,
    tls_server: RawServer,
    system_trusts_test_ca: None,
    request: pytest.FixtureRequest,
) -> None:
    with pytest.raises(ConnectError) as info:
        PoolDriver(flavour, https(tls_server), connections=1)
    assert info.value.origin == https(tls_server)
    assert str(info.value).count(https(tls_server)) == 1, str(info.value)

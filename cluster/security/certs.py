"""A development certificate authority and node/client certificates, as PEM files (`cryptography`).

For test clusters and `brook certs`; production deployments bring their own PKI. Keys are EC P-256,
certificates are valid for `days` (default one year), private keys are written 0600 and unencrypted.

    ca = create_ca(dir)                                        -> dir/ca.pem, dir/ca-key.pem
    issue(ca, dir, "broker-1", hosts=["localhost", "127.0.0.1"])  -> dir/broker-1.pem (chain), dir/broker-1-key.pem
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Ca", "Issued", "create_ca", "issue", "load_ca"]


@dataclass(frozen=True)
class Ca:
    cert_path: Path
    key_path: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    cert_path: Path   # the certificate followed by the CA certificate (a chain)
    key_path: Path


def _write(path: Path, data: bytes, private: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if private:
        os.chmod(path, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def create_ca(directory: str | os.PathLike[str], name: str = "Brook dev CA", days: int = 365) -> Ca:
    directory = Path(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    ca = Ca(directory / "ca.pem", directory / "ca-key.pem", cert, key)
    _write(ca.cert_path, cert.public_bytes(serialization.Encoding.PEM), private=False)
    _write(ca.key_path, _key_pem(key), private=True)
    return ca


def load_ca(directory: str | os.PathLike[str]) -> Ca:
    directory = Path(directory)
    cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("ca-key.pem is not an EC private key")
    return Ca(directory / "ca.pem", directory / "ca-key.pem", cert, key)


def issue(ca: Ca, directory: str | os.PathLike[str], common_name: str, hosts: Sequence[str] = (),
          organization: str = "", days: int = 365) -> Issued:
    """A certificate for `common_name` (subject CN=<name>[,O=<organization>]) usable as TLS server and
    client, with `hosts` (DNS names or IP addresses) as subject alternative names."""
    directory = Path(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = _now()
    builder = (x509.CertificateBuilder().subject_name(x509.Name(attributes)).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                              critical=False))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in common_name)
    issued = Issued(directory / f"{safe}.pem", directory / f"{safe}-key.pem")
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.cert.public_bytes(serialization.Encoding.PEM)
    _write(issued.cert_path, chain, private=False)
    _write(issued.key_path, _key_pem(key), private=True)
    return issued

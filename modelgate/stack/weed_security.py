"""Locks the ports of the local SeaweedFS that are not its S3 gateway.

`weed mini` opens master, volume, filer and admin ports (HTTP and gRPC) besides S3. Without this,
the filer's HTTP port reads, lists, writes and deletes the bucket for anyone on the machine. Per
stack we generate, once, and keep in a 0700 directory with 0600 files:

- a private CA and one certificate/key for every component: all HTTP ports except S3 serve HTTPS
  that requires a client certificate from that CA, and every gRPC port requires one too (mTLS);
- JWT signing keys for writes and reads on the volume servers and on the filer, so even a caller
  that reaches those ports unencrypted (the filer's local socket) is refused.

Only the S3 port answers plain HTTP, and it checks SigV4 against the stack's identity.
weed reads ``security.toml`` from its working directory.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelgate.stack.processes import HOST, write_private_file

# Components that accept a [grpc.NAME] server certificate / an [https.NAME] one.
GRPC_COMPONENTS = ("master", "volume", "filer", "s3", "admin", "worker")
HTTPS_COMPONENTS = ("master", "volume", "filer", "admin")
CERT_DAYS = 3650


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _issue(subject: str, issuer: x509.Name, signing_key, public_key, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def write_stack_tls(tls_dir: Path) -> None:
    """A private CA and one certificate for the stack's components (weed does not check host names)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("modelgate-stack-ca", _name("modelgate-stack-ca"), ca_key, ca_key.public_key(), ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue("modelgate-stack", ca_cert.subject, ca_key, key.public_key(), ca=False)
    write_private_file(tls_dir / "ca.crt", _pem_cert(ca_cert))
    write_private_file(tls_dir / "stack.crt", _pem_cert(cert))
    write_private_file(tls_dir / "stack.key", _pem_key(key))


def _security_toml(tls_dir: Path, keys: dict[str, str]) -> str:
    ca, cert, key = (str(tls_dir / name) for name in ("ca.crt", "stack.crt", "stack.key"))
    lines = []
    for section, value in keys.items():
        lines += [f"[{section}]", f'key = "{value}"', "expires_after_seconds = 10", ""]
    lines += ["[access]", "ui = false", "", "[filer.expose_directory_metadata]", "enabled = false", ""]
    lines += ["[grpc]", f'ca = "{ca}"', ""]
    for component in GRPC_COMPONENTS + ("client",):
        lines += [f"[grpc.{component}]", f'cert = "{cert}"', f'key = "{key}"', ""]
    for component in HTTPS_COMPONENTS:  # a [https.X] ca makes that port require a client certificate
        lines += [f"[https.{component}]", f'cert = "{cert}"', f'key = "{key}"', f'ca = "{ca}"', ""]
    lines += ["[https.client]", "enabled = true", f'cert = "{cert}"', f'key = "{key}"', f'ca = "{ca}"']
    return "\n".join(lines) + "\n"


def ensure_weed_security(work_dir: Path) -> Path:
    """Write ``work_dir/security.toml`` (and its TLS files) unless present; returns work_dir.

    Generated once per stack: restarting keeps the keys, so data written before stays readable."""
    work_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(work_dir, 0o700)
    toml = work_dir / "security.toml"
    tls_dir = work_dir / "tls"
    if toml.exists() and (tls_dir / "stack.key").exists():
        return work_dir
    tls_dir.mkdir(mode=0o700, exist_ok=True)
    write_stack_tls(tls_dir)
    sections = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")
    keys = {section: secrets.token_urlsafe(32) for section in sections}
    write_private_file(toml, _security_toml(tls_dir, keys))
    return work_dir

"""fab doctor's certificate check: seed 001's "certificate not issued" (Traefik serving its own default
certificate for a name) and a certificate that is about to expire because renewal stopped, for every name a TLS
router of Traefik serves and every file of a binary's certs folder (seed 003's autocert cache). The PEM text
comes from sh/doctor.sh; it is parsed here, where a parser is at hand."""
from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from .finding import Finding
from .protocol import Result, fields

RENEWAL_DUE = 14 * 86400   # ACME clients renew 30 days before expiry (Traefik, autocert): under 14, renewal failed
ACME_LOGS = "fab logs --host HOST --stack infra --service traefik | grep -i acme"


def certificates(result: Result, now: float) -> list[Finding]:
    """Each certificate reported: the name it must cover (Traefik's routers) and the days it has left."""
    out = []
    for d in result.all("cert"):
        source, name, pem = fields(d, "source", "name", "pem")
        served = source == "traefik"
        if not pem:
            if served:
                out.append(Finding("tls", "fail", f"{name}: nothing answers TLS for it on this host's :443",
                                   "fab logs --host HOST --stack infra (is Traefik's websecure entrypoint on :443?)"))
            continue   # (a file of the certs folder with no certificate: an account key)
        where = name if served else f"{source}/{name}"
        try:
            cert = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            out.append(Finding("tls", "fail", f"{where}: the certificate cannot be read", ""))
            continue
        out.append(_judge(where, name if served else None, cert, now))
    return out


def _judge(where: str, must_cover: str | None, cert: x509.Certificate, now: float) -> Finding:
    names, issuer = _names(cert), _common_name(cert.issuer) or "an unnamed issuer"
    until = cert.not_valid_after_utc
    left = until.timestamp() - now
    day = until.strftime("%Y-%m-%d")
    if must_cover and not any(_covers(n, must_cover) for n in names):
        return Finding("tls", "fail", f"{where}: the certificate served covers {', '.join(names) or issuer}, not "
                                      f"{must_cover}: no certificate was issued for it (Traefik serves its default)",
                       f"check that {must_cover}'s DNS points at this host and port 80 reaches Traefik (the HTTP "
                       f"challenge): {ACME_LOGS}")
    if left <= 0:
        return Finding("tls", "fail", f"{where}: the certificate expired on {day} (issued by {issuer})",
                       f"renewal stopped: {ACME_LOGS}" if must_cover else "renewal stopped: see the binary's log")
    if left < RENEWAL_DUE:
        return Finding("tls", "warn", f"{where}: the certificate expires in {left / 86400:.0f} days ({day}), issued "
                                      f"by {issuer}: renewal has not happened",
                       ACME_LOGS if must_cover else "see the binary's log (journalctl) for its ACME client")
    return Finding("tls", "ok", f"{where}: valid for {left / 86400:.0f} more days ({day}), issued by {issuer}")


def _names(cert: x509.Certificate) -> list[str]:
    try:
        return cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value.get_values_for_type(
            x509.DNSName)
    except x509.ExtensionNotFound:
        return [n for n in [_common_name(cert.subject)] if n]


def _common_name(name: x509.Name) -> str:
    found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else ""


def _covers(pattern: str, host: str) -> bool:
    """A certificate name covers ``host``: the same name, or a wildcard for one label (*.example covers
    a.example, not a.b.example)."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        return "." in host and host.split(".", 1)[1] == pattern[2:]
    return pattern == host



"""Where an archive is: a DICOMweb root URL or a DIMSE address, and how to log in to it.

SOURCE forms (of `modan-dicom index` and `modan-dicom pull`):

- ``http://host:8042/dicom-web`` or ``https://…`` — a DICOMweb root (QIDO-RS, WADO-RS);
- ``dimse://CALLED_AET@HOST:PORT`` — classic DICOM networking (C-FIND, C-GET); the calling AE title is
  ``--calling-aet`` (default ``MODAN``).

DICOMweb credentials come from the environment, never from the command line (where `ps` and shell
histories would keep them): ``MODAN_DICOMWEB_TOKEN`` (sent as ``Authorization: Bearer …``), else
``MODAN_DICOMWEB_USER`` and ``MODAN_DICOMWEB_PASSWORD`` (HTTP basic). A URL that carries a user or password
is refused. ``ca_bundle`` (``--ca-bundle``) names the PEM file of the certificate authorities to trust for
``https`` (default: the system's).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import ConfigError

TOKEN_ENV = "MODAN_DICOMWEB_TOKEN"
USER_ENV = "MODAN_DICOMWEB_USER"
PASSWORD_ENV = "MODAN_DICOMWEB_PASSWORD"
DEFAULT_CALLING_AET = "MODAN"
_AET = re.compile(r"^[\x20-\x7e]{1,16}$")
_DIMSE = re.compile(r"^dimse://(?P<aet>[^@/]+)@(?P<host>\[[^\]]+\]|[^:/]+):(?P<port>\d+)/?$", re.IGNORECASE)


@dataclass(frozen=True)
class ArchiveAddress:
    """A parsed archive address.

    protocol: "dicomweb" or "dimse"; url: the DICOMweb root without a trailing slash (dicomweb) or the
    normalised ``dimse://AET@HOST:PORT``; host, port; called_aet / calling_aet (dimse only); ca_bundle
    (dicomweb over https only). `display` is what messages and the index metadata show: never a secret.
    """

    protocol: str
    url: str
    host: str
    port: int
    called_aet: str = ""
    calling_aet: str = DEFAULT_CALLING_AET
    ca_bundle: str | None = None

    @property
    def display(self) -> str:
        return self.url


def is_archive(source: str | os.PathLike[str]) -> bool:
    """True when `source` names an archive (a URL) rather than a folder."""
    text = str(source).lower()
    return text.startswith(("http://", "https://", "dimse://"))


def _check_aet(value: str, what: str) -> str:
    value = value.strip()
    if not _AET.match(value) or "\\" in value:
        raise ConfigError(f"{what} {value!r} is not a valid AE title (1 to 16 printable ASCII characters)")
    return value


def parse_address(
    source: str, *, calling_aet: str = DEFAULT_CALLING_AET, ca_bundle: str | None = None,
) -> ArchiveAddress:
    """Parse an archive address (see the module docstring); raises ConfigError with one line."""
    text = str(source).strip()
    if text.lower().startswith("dimse://"):
        match = _DIMSE.match(text)
        if match is None:
            raise ConfigError(f"{text}: a DIMSE address is dimse://CALLED_AET@HOST:PORT")
        aet = _check_aet(match["aet"], "the called AE title")
        host = match["host"].strip("[]")
        port = int(match["port"])
        if not 0 < port < 65536:
            raise ConfigError(f"{text}: port {port} is out of range")
        if ca_bundle:
            raise ConfigError("--ca-bundle applies to https DICOMweb addresses, not to DIMSE")
        return ArchiveAddress("dimse", f"dimse://{aet}@{match['host']}:{port}", host, port, aet,
                              _check_aet(calling_aet, "the calling AE title"))
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{text}: not an archive address (http(s)://HOST/dicom-web or dimse://AET@HOST:PORT)")
    if parts.username or parts.password:
        raise ConfigError(f"credentials in the URL are refused (they would stay in shell histories); "
                          f"set {TOKEN_ENV}, or {USER_ENV} and {PASSWORD_ENV}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{text}: give the DICOMweb root without a query (e.g. http://host:8042/dicom-web)")
    if ca_bundle and not os.path.isfile(ca_bundle):
        raise ConfigError(f"--ca-bundle {ca_bundle}: no such file")
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as exc:
        raise ConfigError(f"{text}: {exc}") from exc
    url = f"{parts.scheme.lower()}://{parts.netloc}{parts.path.rstrip('/')}"
    return ArchiveAddress("dicomweb", url, parts.hostname, port, ca_bundle=ca_bundle)


def dicomweb_auth_headers() -> dict[str, str]:
    """HTTP headers carrying the DICOMweb credentials of the environment (may be empty)."""
    import base64

    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return {"Authorization": f"Bearer {token}"}
    user = os.environ.get(USER_ENV, "")
    if user:
        secret = f"{user}:{os.environ.get(PASSWORD_ENV, '')}".encode()
        return {"Authorization": "Basic " + base64.b64encode(secret).decode("ascii")}
    return {}

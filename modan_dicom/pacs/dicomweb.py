"""DICOMweb archives through `dicomweb-client`: QIDO-RS to query, WADO-RS to retrieve.

Queries page with ``limit`` / ``offset``. An answer is reported cut (`Answer.truncated`) when the server
sends a ``Warning`` header (PS3.18 8.3.4.4: "299 … The number of results exceeded the maximum supported by
the server"), and undecided when the server ignores ``limit`` (it answered more than asked) or when paging
stops on an empty page right after full ones: both are what a silent cap looks like, so the crawl checks them.
Transient failures (HTTP 408, 429, 500, 502, 503, 504, a dropped connection) are retried with backoff.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ..errors import PacsError
from .address import ArchiveAddress, dicomweb_auth_headers
from .archive import INSTANCE_FIELDS, SERIES_FIELDS, Answer, Archive, SeriesQuery, json_to_record, one_line

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
ACCEPT_ANY_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def _tags(keywords: Sequence[str]) -> list[str]:
    from pydicom.datadict import tag_for_keyword

    return [f"{tag_for_keyword(k):08X}" for k in keywords]


class DicomwebArchive(Archive):
    """A DICOMweb root (thread-safe: one HTTP session per thread)."""

    def __init__(self, address: ArchiveAddress, *, timeout_s: float = 30.0, page_size: int = 1000) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.page_size = page_size
        self._local = threading.local()
        self._headers = dicomweb_auth_headers()

    # ---- plumbing -------------------------------------------------------------------------------

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            import requests
            from dicomweb_client.api import DICOMwebClient

            session = requests.Session()
            session.headers.update(self._headers)
            if self.address.ca_bundle:
                session.verify = self.address.ca_bundle
            self._local.warnings = []

            def keep_warning(response: Any, *args: Any, **kwargs: Any) -> None:
                warning = response.headers.get("Warning")
                if warning:
                    self._local.warnings.append(warning)

            client = DICOMwebClient(self.address.url, session=session, callback=keep_warning,
                                    timeout=self.timeout_s)
            client.set_http_retry_params(retry=False)  # our own retries (below) cover more failures
            self._local.client = client
            self._local.session = session
        return client

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.client = self._local.session = None

    def _transient(self, exc: BaseException) -> bool:
        import requests

        if isinstance(exc, requests.HTTPError):
            return exc.response is not None and exc.response.status_code in RETRY_STATUS
        dropped = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
        return isinstance(exc, dropped) and not _refused(exc)

    def _call(self, what: str, action: Any) -> Any:
        """Run one request with retries; turn what escapes into a one-line PacsError."""
        import requests

        try:
            return self.with_retries(action, what, self._transient)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            reason = exc.response.reason if exc.response is not None else ""
            hint = {401: " (check MODAN_DICOMWEB_TOKEN or MODAN_DICOMWEB_USER / MODAN_DICOMWEB_PASSWORD)",
                    403: " (the credentials are not allowed to do this)"}.get(status, "")
            raise PacsError(f"{self.address.display}: {what}: HTTP {status} {reason}{hint}".rstrip()) from exc
        except requests.exceptions.SSLError as exc:
            raise PacsError(f"{self.address.display}: TLS failed ({one_line(exc, 160)}); see --ca-bundle") from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            if _refused(exc):
                raise PacsError(f"{self.address.display}: cannot connect (connection refused)") from exc
            raise PacsError(f"{self.address.display}: {what}: the connection failed or was dropped "
                            f"({one_line(exc, 160)})") from exc
        except requests.Timeout as exc:
            raise PacsError(f"{self.address.display}: {what}: no answer within {self.timeout_s:g} s") from exc
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # JSON / multipart that does not parse
            raise PacsError(f"{self.address.display}: {what}: the answer is not valid DICOMweb "
                            f"({one_line(exc, 160)})") from exc

    def _search(self, what: str, method: str, fields: Sequence[str], filters: dict[str, str],
                **uids: str) -> Answer:
        """Page through one QIDO-RS query."""
        records: list[dict[str, Any]] = []
        truncated: bool | None = False
        offset = 0
        while True:
            def page(offset: int = offset) -> list[Any]:
                self._client()
                self._local.warnings = []
                answer = getattr(self._local.client, method)(
                    fields=_tags(fields), search_filters=filters or None, limit=self.page_size, offset=offset,
                    **uids)
                if not isinstance(answer, list) or not all(isinstance(a, dict) for a in answer):
                    raise ValueError("a QIDO-RS answer must be a JSON array of objects")
                return answer

            answer = self._call(what, page)
            if any("299" in w or "exceed" in w.lower() for w in self._local.warnings):
                truncated = True
            records.extend(json_to_record(item) for item in answer)
            if len(answer) > self.page_size:
                return Answer(records, truncated or None)  # `limit` ignored: a capped or unpaged answer
            if len(answer) < self.page_size:
                if not answer and offset > 0 and truncated is not True:
                    truncated = None  # exactly full pages, then nothing: what a cap at a round number looks like
                return Answer(records, truncated)
            offset += len(answer)

    # ---- the Archive interface --------------------------------------------------------------------

    def find_series(self, query: SeriesQuery) -> Answer:
        filters: dict[str, str] = {}
        dates = query.dates.query_value()
        if dates:
            filters["StudyDate"] = dates
        if query.modality:
            filters["Modality"] = query.modality
        return self._search("series query", "search_for_series", SERIES_FIELDS, filters)

    def series_instances(self, study_uid: str, series_uid: str, instance_number: int | None = None) -> Answer:
        filters = {"InstanceNumber": str(instance_number)} if instance_number is not None else {}
        return self._search("instance query", "search_for_instances", INSTANCE_FIELDS, filters,
                            study_instance_uid=study_uid, series_instance_uid=series_uid)

    def instance_metadata(self, study_uid: str, series_uid: str, sop_uid: str) -> dict[str, Any]:
        def fetch() -> dict[str, Any]:
            answer = self._client().retrieve_instance_metadata(study_uid, series_uid, sop_uid)
            if not isinstance(answer, dict):
                raise ValueError("instance metadata must be a JSON object")
            return json_to_record(answer)

        return self._call("instance metadata", fetch)

    def retrieve(self, study_uid: str, series_uid: str, sop_uid: str, sop_class: str | None = None) -> Any:
        """The instance in the transfer syntax the archive holds it in (``transfer-syntax=*``: no
        transcoding, no loss), as a pydicom Dataset (`sop_class` is not needed here)."""
        from io import BytesIO

        import pydicom

        url = f"{self.address.url}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"

        def fetch() -> Any:
            self._client()
            response = self._local.session.get(url, headers={"Accept": ACCEPT_ANY_DICOM}, timeout=self.timeout_s)
            response.raise_for_status()
            parts = multipart_parts(response.headers.get("Content-Type", ""), response.content)
            if not parts:
                raise ValueError("the WADO-RS answer holds no instance")
            return pydicom.dcmread(BytesIO(parts[0]), force=True)

        return self._call("instance retrieval", fetch)

def _refused(exc: BaseException) -> bool:
    return "refused" in str(exc).lower() or "name or service not known" in str(exc).lower()



def multipart_parts(content_type: str, body: bytes) -> list[bytes]:
    """The bodies of a ``multipart/related`` message (RFC 2046); a lone ``application/dicom`` body (which
    some servers send) is one part."""
    if not content_type.lower().startswith("multipart/"):
        return [body] if body else []
    boundary = None
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        raise ValueError("a multipart answer without a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, separator, content = chunk.partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a multipart part without headers")
        parts.append(content[:-2] if content.endswith(b"\r\n") else content)
    return parts

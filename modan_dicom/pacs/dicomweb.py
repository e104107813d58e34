"""DICOMweb archives: QIDO-RS to query, WADO-RS to retrieve, over bounded GETs (`http.py`).

Queries page with ``limit`` / ``offset``. An answer is reported cut (`Answer.truncated`) when the server
sends a ``Warning`` header (PS3.18 8.3.4.4: "299 … The number of results exceeded the maximum supported by
the server"), and undecided when the server ignores ``limit`` (it answered more than asked) or when paging
stops on an empty page right after full ones: both are what a silent cap looks like, so the crawl checks them.
A server that ignores ``offset`` (a page it already sent, again) ends the query with a `PacsError`.
Transient failures (HTTP 408, 429, 500, 502, 503, 504, a dropped connection, a socket timeout) are retried
with backoff; a request past its total deadline, an answer past its size cap, a refused redirect and an
answer that is not DICOM JSON (malformed, nested deeper than `Limits.max_json_depth`, numbers out of range)
are not. Every answer is read whole within those bounds before it is parsed (`read_json`).
"""

from __future__ import annotations

import http
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import PacsError
from .address import ArchiveAddress, dicomweb_auth_headers
from .archive import (
    INSTANCE_FIELDS,
    SERIES_FIELDS,
    Answer,
    Archive,
    Limits,
    Malformed,
    SeriesQuery,
    json_to_record,
)
from .http import BoundedHttp, Deadline, Refused, TooLarge
from .instance import Incomplete, whole_instance

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
ACCEPT_ANY_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
ACCEPT_JSON = "application/dicom+json, application/json"
_OPEN, _CLOSE = frozenset(b"[{"), frozenset(b"]}")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - _OPEN - _CLOSE))
_STRING: Any = None  # compiled on first use


def _tags(keywords: Sequence[str]) -> list[str]:
    from pydicom.datadict import tag_for_keyword

    return [f"{tag_for_keyword(k):08X}" for k in keywords]


def json_too_deep(body: bytes, max_depth: int) -> bool:
    """Whether the arrays and objects of a JSON text nest deeper than `max_depth` (brackets inside strings
    do not count; the scan stops at the first level too deep)."""
    global _STRING
    if _STRING is None:
        import re

        _STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
    depth = 0
    for byte in _STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in _OPEN else -1
        if depth > max_depth:
            return True
    return False


def _no_constant(name: str) -> Any:
    raise Malformed(f"{name} is not a JSON number")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > 20:  # no DICOM value (at most 64 bits) is that long
        raise Malformed("a number is far out of range")
    return int(digits)


def read_json(body: bytes, max_depth: int) -> Any:
    """Parse a JSON answer: `Malformed` when it nests deeper than `max_depth`, holds NaN / Infinity or an
    integer of more than 20 digits, or does not parse."""
    if json_too_deep(body, max_depth):
        raise Malformed(f"the JSON nests deeper than {max_depth} levels")
    try:
        return json.loads(body, parse_constant=_no_constant, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise Malformed(f"not JSON ({exc.msg} at character {exc.pos})") from None
    except UnicodeDecodeError:
        raise Malformed("not JSON (not UTF-8 text)") from None
    except RecursionError:
        raise Malformed("the JSON nests too deeply") from None


class DicomwebArchive(Archive):
    """A DICOMweb root (thread-safe: one HTTP session per thread)."""

    def __init__(self, address: ArchiveAddress, *, timeout_s: float = 30.0, page_size: int = 1000,
                 limits: Limits | None = None) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.page_size = page_size
        self.limits = limits or Limits()
        self._http = BoundedHttp(address.url, headers=dicomweb_auth_headers(), ca_bundle=address.ca_bundle,
                                 timeout_s=timeout_s, limits=self.limits)

    # ---- plumbing -------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def _transient(self, exc: BaseException) -> bool:
        import requests

        if isinstance(exc, requests.HTTPError):
            return exc.response is not None and exc.response.status_code in RETRY_STATUS
        dropped = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
        return isinstance(exc, dropped) and not _refused(exc)

    def _call(self, what: str, action: Any) -> Any:
        """Run one request with retries; turn what escapes into a one-line PacsError (no URL, no UID)."""
        import requests

        where = f"{self.address.display}: {what}"
        try:
            return self.with_retries(action, what, self._transient)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            try:
                reason = http.HTTPStatus(status).phrase
            except ValueError:
                reason = ""
            hint = {401: " (check MODAN_DICOMWEB_TOKEN or MODAN_DICOMWEB_USER / MODAN_DICOMWEB_PASSWORD)",
                    403: " (the credentials are not allowed to do this)"}.get(status, "")
            raise PacsError(f"{where}: HTTP {status or '?'} {reason}{hint}".rstrip()) from exc
        except Deadline as exc:
            raise PacsError(f"{where}: no complete answer within {self.limits.deadline_s:g} s "
                            "(the deadline of one request)") from exc
        except TooLarge as exc:
            cap = self.limits.max_instance_bytes if what == "instance retrieval" else self.limits.max_json_bytes
            raise PacsError(f"{where}: the answer is larger than {cap / 2 ** 20:g} MiB (the size cap)") from exc
        except (Refused, Incomplete) as exc:
            raise PacsError(f"{where}: {exc}") from exc
        except requests.exceptions.SSLError as exc:
            raise PacsError(f"{self.address.display}: TLS failed ({_tls_reason(exc)}); see --ca-bundle") from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            if _refused(exc):
                raise PacsError(f"{self.address.display}: cannot connect (connection refused)") from exc
            raise PacsError(f"{where}: the connection failed or was dropped") from exc
        except requests.Timeout as exc:
            raise PacsError(f"{where}: no answer within {self.timeout_s:g} s") from exc
        except requests.RequestException as exc:
            raise PacsError(f"{where}: the request failed ({type(exc).__name__})") from exc
        except Malformed as exc:
            raise PacsError(f"{where}: the answer is not valid DICOMweb ({exc})") from exc
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            raise PacsError(f"{where}: the answer is not valid DICOMweb ({type(exc).__name__})") from exc
        except MemoryError as exc:
            raise PacsError(f"{where}: the answer is too large to hold in memory") from exc

    def _json(self, path: str, params: Mapping[str, Any] | None) -> tuple[Any, str]:
        """(parsed JSON answer, its Warning header) of one GET below the root."""
        status, headers, body = self._http.get(self.address.url + path, params, ACCEPT_JSON,
                                               self.limits.max_json_bytes)
        answer = read_json(body, self.limits.max_json_depth) if body.strip() else []
        return answer, headers.get("Warning", "") if status != 204 else ""

    def _search(self, what: str, path: str, fields: Sequence[str], filters: dict[str, str]) -> Answer:
        """Page through one QIDO-RS query."""
        records: list[dict[str, Any]] = []
        truncated: bool | None = False
        offset = 0
        pages: set[tuple[str, str]] = set()
        while True:
            params = {"includefield": _tags(fields), **filters, "limit": self.page_size, "offset": offset}

            def page(params: dict[str, Any] = params) -> tuple[list[dict[str, Any]], str, tuple[str, str] | None]:
                self.spend()
                answer, warning = self._json(path, params)
                if isinstance(answer, Mapping):
                    answer = [answer]  # some servers send a lone dataset
                if not isinstance(answer, list):
                    raise Malformed("a QIDO-RS answer must be a JSON array of objects")
                ends = (_canonical(answer[0]), _canonical(answer[-1])) if answer else None
                return [json_to_record(item) for item in answer], warning, ends

            found, warning, ends = self._call(what, page)
            if "299" in warning or "exceed" in warning.lower():
                truncated = True
            if ends is not None:
                if ends in pages:
                    raise PacsError(f"{self.address.display}: {what}: the archive sent a page it had sent already "
                                    f"(it ignores the paging offset); stopped after {len(pages) + 1} pages")
                pages.add(ends)
            records.extend(found)
            if len(found) > self.page_size:
                return Answer(records, truncated or None)  # `limit` ignored: a capped or unpaged answer
            if len(found) < self.page_size:
                if not found and offset > 0 and truncated is not True:
                    truncated = None  # exactly full pages, then nothing: what a cap at a round number looks like
                return Answer(records, truncated)
            offset += len(found)

    # ---- the Archive interface --------------------------------------------------------------------

    def find_series(self, query: SeriesQuery) -> Answer:
        filters: dict[str, str] = {}
        dates = query.dates.query_value()
        if dates:
            filters["StudyDate"] = dates
        if query.modality:
            filters["Modality"] = query.modality
        return self._search("series query", "/series", SERIES_FIELDS, filters)

    def series_instances(self, study_uid: str, series_uid: str, instance_number: int | None = None) -> Answer:
        filters = {"InstanceNumber": str(instance_number)} if instance_number is not None else {}
        return self._search("instance query", f"/studies/{study_uid}/series/{series_uid}/instances",
                            INSTANCE_FIELDS, filters)

    def instance_metadata(self, study_uid: str, series_uid: str, sop_uid: str) -> dict[str, Any]:
        def fetch() -> dict[str, Any]:
            self.spend()
            answer, _ = self._json(f"/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/metadata", None)
            if isinstance(answer, list) and len(answer) == 1:
                answer = answer[0]
            if not isinstance(answer, Mapping):
                raise Malformed("instance metadata must be a JSON object (or an array of one)")
            return json_to_record(answer)

        return self._call("instance metadata", fetch)

    def retrieve(self, study_uid: str, series_uid: str, sop_uid: str, sop_class: str | None = None) -> Any:
        """The instance in the transfer syntax the archive holds it in (``transfer-syntax=*``: no
        transcoding, no loss), as a pydicom Dataset checked to be whole (`instance.whole_instance`;
        `sop_class` is not needed here)."""
        path = f"/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"

        def fetch() -> Any:
            _, headers, body = self._http.get(self.address.url + path, None, ACCEPT_ANY_DICOM,
                                              self.limits.max_instance_bytes)
            parts = multipart_parts(headers.get("Content-Type", ""), body)
            if not parts:
                raise Malformed("the WADO-RS answer holds no instance")
            return whole_instance(parts[0], sop_uid, self.limits.max_instance_bytes)

        return self._call("instance retrieval", fetch)


def _canonical(item: Any) -> str:
    return json.dumps(item, sort_keys=True, default=str)


def _tls_reason(exc: BaseException) -> str:
    """The TLS library's reason for a failed handshake (e.g. "certificate verify failed: self-signed
    certificate"), found in the exception chain; never the URL the exception's message quotes."""
    import ssl

    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {current.verify_message}"
        if isinstance(current, ssl.SSLError):
            return str(current.reason or "handshake failed").replace("_", " ").lower()
        todo.extend([getattr(current, "reason", None), current.__cause__, current.__context__,
                     *[a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]])
    return "handshake failed"


def _refused(exc: BaseException) -> bool:
    return "refused" in str(exc).lower() or "name or service not known" in str(exc).lower()


def multipart_parts(content_type: str, body: bytes) -> list[bytes]:
    """The bodies of a ``multipart/related`` message (RFC 2046); a lone ``application/dicom`` body (which
    some servers send) is one part. A part counts only when a delimiter follows it: a message without its
    closing delimiter was cut, and its last part is dropped (`Malformed` when that leaves none)."""
    if not content_type.lower().startswith("multipart/"):
        return [body] if body else []
    boundary = None
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        raise Malformed("a multipart answer without a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(delimiter)[1:]
    parts = []
    for number, chunk in enumerate(chunks):
        if chunk.startswith(b"--"):
            return parts  # the closing delimiter
        if number == len(chunks) - 1:
            break  # no delimiter after it: the message was cut inside this part
        head, separator, content = chunk.partition(b"\r\n\r\n")
        if not separator:
            raise Malformed("a multipart part without headers")
        parts.append(content[:-2] if content.endswith(b"\r\n") else content)
    if not parts:
        raise Malformed("the multipart answer was cut short (no closing delimiter)")
    return parts

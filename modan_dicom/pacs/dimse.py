"""DIMSE archives through `pynetdicom`: C-FIND to query, C-GET to retrieve (Study Root model).

A series query is hierarchical, as the Study Root model wants it: the studies of the date range (C-FIND at
STUDY level: Patient ID, Study Date, Study Description), then the series of each study (C-FIND at SERIES
level). An answer that ends in Cancel (0xFE00: how Orthanc says it stopped at ``LimitFindResults``) is
reported cut. Operations share a bounded pool of associations (`workers` at most, whatever the number of
threads); an aborted association or a dropped connection is retried on a new one with backoff. C-GET asks
the archive to send the instance back on the same association (the SCP role is negotiated for the storage
SOP classes being pulled); the instance counts only when the bytes it arrived in are whole
(`instance.whole_instance`). A C-FIND or C-GET that runs past `Limits.deadline_s` is aborted (each wait for
a message is bounded by `timeout_s` on its own).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import PacsError
from .address import ArchiveAddress
from .archive import (
    INSTANCE_FIELDS,
    SERIES_FIELDS,
    Answer,
    Archive,
    Limits,
    SeriesQuery,
    dataset_to_record,
    integer,
    until_complete,
)

STUDY_FIELDS = ("StudyInstanceUID", "PatientID", "StudyDate", "StudyDescription", "PatientName", "PatientBirthDate")
STUDY_COUNT = "NumberOfStudyRelatedSeries"
METADATA_FIELDS = ("Modality", "SOPClassUID", "BodyPartExamined", "SeriesDescription", "ProtocolName",
                   "StudyDescription", "ImageLaterality", "Laterality", "ViewPosition", "Rows", "Columns",
                   "Manufacturer", "ManufacturerModelName", "PatientID", "StudyDate")
SUCCESS, CANCEL = 0x0000, 0xFE00
PENDING = (0xFF00, 0xFF01)


class Transient(Exception):
    """An association that failed in a way worth retrying (aborted, dropped, timed out)."""


class _DroppedResponses(logging.Handler):
    """Which associations lost a response to pynetdicom's own reactor thread.

    In pynetdicom 3.0 the association's reactor thread can take a response meant for a running
    send_c_find / send_c_get off the queue (its pause handshake is racy) and drop it with the warning
    "Received unexpected C-FIND service message" (pydicom/pynetdicom#875), while the operation still
    ends with Success: one match is silently missing. The reactor thread is the Association itself, so
    the warning's thread id names the association that lost one."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._threads: set[int] = set()
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Received unexpected") and record.thread is not None:
            with self._guard:
                self._threads.add(record.thread)

    def take(self, ident: int | None) -> bool:
        """Whether the association whose reactor thread is `ident` dropped a response since asked last
        (and forget it)."""
        with self._guard:
            if ident in self._threads:
                self._threads.discard(ident)
                return True
            return False


_DROPPED = _DroppedResponses()
logging.getLogger("pynetdicom.association").addHandler(_DROPPED)


def _transfer_syntaxes() -> list[str]:
    from pydicom import uid

    return [uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian, uid.DeflatedExplicitVRLittleEndian,
            uid.ExplicitVRBigEndian, uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLosslessSV1,
            uid.JPEGLossless, uid.JPEGLSLossless, uid.JPEGLSNearLossless, uid.JPEG2000Lossless, uid.JPEG2000,
            uid.JPEG2000MCLossless, uid.JPEG2000MC, uid.RLELossless]


class _Connection:
    """One association and what it can do; `received` collects the C-STORE sub-operations of a C-GET."""

    def __init__(self, assoc: Any, storage: frozenset[str]) -> None:
        self.assoc = assoc
        self.storage = storage
        self.received: list[Any] = []


class DimseArchive(Archive):
    """A DICOM node reached by C-FIND / C-GET (thread-safe: at most `workers` associations at once)."""

    max_storage_classes = 8  # 128 presentation contexts at most: C-FIND, C-GET, 8 classes x 15 syntaxes

    def __init__(self, address: ArchiveAddress, *, timeout_s: float = 30.0, workers: int = 4,
                 limits: Limits | None = None) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.limits = limits or Limits()
        self.workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(self.workers)
        self._lock = threading.Lock()
        self._open: list[_Connection] = []
        self._idle: list[_Connection] = []

    # ---- associations -----------------------------------------------------------------------------

    def _connect(self, storage: frozenset[str]) -> _Connection:
        from pynetdicom import AE, build_role, evt
        from pynetdicom.sop_class import (
            StudyRootQueryRetrieveInformationModelFind,
            StudyRootQueryRetrieveInformationModelGet,
        )

        try:  # a plain TCP probe first: pynetdicom reports a refused connection as an abort
            socket.create_connection((self.address.host, self.address.port), timeout=min(self.timeout_s, 10.0)).close()
        except OSError as exc:
            raise PacsError(f"{self.address.display}: cannot connect ({exc.strerror or exc})") from exc
        ae = AE(ae_title=self.address.calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        ae.connection_timeout = min(self.timeout_s, 10.0)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        for sop_class in sorted(storage):  # one context per syntax: the archive picks the one a file is in
            for syntax in _transfer_syntaxes():
                ae.add_requested_context(sop_class, syntax)
        roles = [build_role(sop_class, scp_role=True) for sop_class in sorted(storage)]
        holder: dict[str, _Connection] = {}

        def on_store(event: Any) -> int:
            holder["connection"].received.append(event.encoded_dataset())  # checked whole by `retrieve`
            return SUCCESS

        assoc = ae.associate(self.address.host, self.address.port, ae_title=self.address.called_aet,
                             ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
        if not assoc.is_established:
            where = f"{self.address.display}"
            if assoc.is_rejected:
                raise PacsError(f"{where}: the association was rejected ({_rejection(assoc)})")
            if assoc.is_aborted:
                raise Transient(f"{where}: the association was aborted while opening")
            raise PacsError(f"{where}: cannot connect (no DICOM answer on {self.address.host}:{self.address.port})")
        with contextlib.suppress(AttributeError, OSError):  # small requests go out at once (no Nagle wait)
            assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = holder["connection"] = _Connection(assoc, storage)
        with self._lock:
            self._open.append(connection)
        return connection

    @contextlib.contextmanager
    def _lease(self, storage: Iterable[str] = ()) -> Iterator[_Connection]:
        """An association for one operation, able to receive the SOP classes `storage` (C-GET).

        At most `workers` associations are open at once, whichever threads ask (archives limit them:
        Orthanc serves 4 at a time by default and makes the fifth wait). Idle ones are kept for the next
        operation; one that lacks a storage class is replaced by one that has its classes and the new
        ones (up to `max_storage_classes`). One that failed in any way is aborted, not reused."""
        wanted = frozenset(storage)
        with self._slots:
            connection = None
            replaced = None
            with self._lock:
                for candidate in self._idle:
                    if wanted <= candidate.storage:
                        connection = candidate
                        break
                if connection is None and self._idle:
                    replaced = self._idle[0]
                if connection is not None or replaced is not None:
                    self._idle.remove(connection or replaced)
            if replaced is not None:
                union = replaced.storage | wanted
                wanted = union if len(union) <= self.max_storage_classes else wanted
                self._release(replaced)
            if connection is not None and not connection.assoc.is_established:
                self._release(connection)
                connection = None
            if connection is None:
                connection = self._connect(wanted)
            try:
                yield connection
            except BaseException:
                with contextlib.suppress(Exception):
                    connection.assoc.abort()
                self._release(connection)
                raise
            with self._lock:
                self._idle.append(connection)

    def _release(self, connection: _Connection) -> None:
        try:
            if connection.assoc.is_established:
                connection.assoc.release()
        finally:
            with self._lock:
                if connection in self._open:
                    self._open.remove(connection)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._lock:
            connections = list(self._open)
            self._idle.clear()
        for connection in connections:
            try:
                self._release(connection)
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    def _run(self, what: str, action: Any) -> Any:
        try:
            return self.with_retries(action, what, lambda exc: isinstance(exc, Transient))
        except Transient as exc:
            raise PacsError(f"{exc} ({what}; gave up after {self.retries + 1} tries)") from exc

    def _drain(self, responses: Iterable[tuple[Any, Any]], what: str) -> tuple[int, list[Any]]:
        """(final status, identifiers of the pending responses) of one C-FIND / C-GET; Transient when the
        connection drops or the operation ends without a final status."""
        final = None
        pending: list[Any] = []
        deadline = time.monotonic() + self.limits.deadline_s
        for status, identifier in responses:
            if time.monotonic() > deadline:  # raised inside the lease: the association is aborted
                raise PacsError(f"{self.address.display}: the {what} took more than {self.limits.deadline_s:g} s "
                                "(the deadline of one request)")
            code = getattr(status, "Status", None)
            if code is None:
                raise Transient(f"{self.address.display}: the connection was dropped during a {what}")
            if code in PENDING:
                pending.append(identifier)
                continue
            final = code
        if final is None:
            raise Transient(f"{self.address.display}: the {what} ended without a final status")
        return final, pending

    # ---- C-FIND -------------------------------------------------------------------------------------

    def _find(self, level: str, keys: dict[str, Any], what: str) -> Answer:
        from pydicom.dataset import Dataset
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

        identifier = Dataset()
        identifier.QueryRetrieveLevel = level
        for keyword, value in keys.items():
            if keyword == "AnatomicRegionSequence":
                from pydicom.sequence import Sequence as DicomSequence

                setattr(identifier, keyword, DicomSequence([]))
            else:
                setattr(identifier, keyword, value)  # None: an empty key, "return this attribute"

        def query() -> Answer:
            self.spend()
            with self._lease() as connection:
                _DROPPED.take(connection.assoc.ident)  # a stale mark (a C-GET's, or a reused thread id) is not ours
                responses = connection.assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind)
                final, pending = self._drain(responses, what)
                if _DROPPED.take(connection.assoc.ident):
                    raise Transient(f"{self.address.display}: pynetdicom dropped a {what} response "
                                    "(pydicom/pynetdicom#875)")
            records = [dataset_to_record(found) for found in pending if found is not None]
            if final == SUCCESS:
                return Answer(records, False)
            if final == CANCEL:
                return Answer(records, True)
            raise PacsError(f"{self.address.display}: {what} failed (C-FIND status 0x{final:04X})")

        return self._run(what, query)

    def find_series(self, query: SeriesQuery) -> Answer:
        study_keys: dict[str, Any] = dict.fromkeys((*STUDY_FIELDS, STUDY_COUNT))
        study_keys["StudyDate"] = query.dates.query_value()
        if query.modality:
            study_keys["ModalitiesInStudy"] = query.modality
        studies = self._find("STUDY", study_keys, "study query")
        series_keys = dict.fromkeys(f for f in SERIES_FIELDS if f not in STUDY_FIELDS)
        series_keys["Modality"] = query.modality
        wanted = [study for study in studies.records if study.get("StudyInstanceUID")]

        def series_of(study: dict[str, Any]) -> Answer:
            expected = integer(study.get(STUDY_COUNT)) if not query.modality else None  # all modalities
            return until_complete(lambda: self._find("SERIES", {"StudyInstanceUID": study["StudyInstanceUID"],
                                                                 **series_keys}, "series query"), expected)

        with self._lock:  # crawl threads may get here at once
            if self._pool is None:  # kept for the next query
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="modan-dimse")
        records: list[dict[str, Any]] = []
        truncated: bool | None = studies.truncated
        for study, found in zip(wanted, self._pool.map(series_of, wanted)):
            truncated = truncated or found.truncated
            context = {k: study.get(k) for k in STUDY_FIELDS}
            records.extend({**record, **context} for record in found.records)
        return Answer(records, truncated)

    def series_instances(self, study_uid: str, series_uid: str, instance_number: int | None = None) -> Answer:
        keys = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid, **dict.fromkeys(INSTANCE_FIELDS)}
        if instance_number is not None:
            keys["InstanceNumber"] = str(instance_number)
        return self._find("IMAGE", keys, "instance query")

    def instance_metadata(self, study_uid: str, series_uid: str, sop_uid: str) -> dict[str, Any]:
        keys = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid, "SOPInstanceUID": sop_uid,
                **dict.fromkeys(METADATA_FIELDS), "AnatomicRegionSequence": None}
        answer = self._find("IMAGE", keys, "instance metadata query")
        return answer.records[0] if answer.records else {}

    # ---- C-GET --------------------------------------------------------------------------------------

    def retrieve(self, study_uid: str, series_uid: str, sop_uid: str, sop_class: str | None = None) -> Any:
        from pydicom.dataset import Dataset
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

        if not sop_class:
            sop_class = self.instance_metadata(study_uid, series_uid, sop_uid).get("SOPClassUID")
        if not sop_class:
            raise PacsError(f"{self.address.display}: no SOP Class UID for the instance to retrieve")
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "IMAGE"
        identifier.StudyInstanceUID = study_uid
        identifier.SeriesInstanceUID = series_uid
        identifier.SOPInstanceUID = sop_uid

        def get() -> Any:
            from .instance import whole_instance

            with self._lease([str(sop_class)]) as connection:
                connection.received.clear()
                try:
                    final, _ = self._drain(
                        connection.assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet), "C-GET")
                    received = list(connection.received)
                finally:
                    connection.received.clear()
            for data in received:
                if len(data) > self.limits.max_instance_bytes:
                    raise PacsError(f"{self.address.display}: C-GET: the instance is larger than "
                                    f"{self.limits.max_instance_bytes / 2 ** 20:g} MiB (the size cap)")
                dataset = whole_instance(data, None, self.limits.max_instance_bytes)
                if str(dataset.get("SOPInstanceUID", "")).strip() == sop_uid:
                    return dataset
            raise PacsError(f"{self.address.display}: C-GET returned no instance (status 0x{final:04X})")

        return self._run("C-GET", get)


def _rejection(assoc: Any) -> str:
    """Why an association was rejected, in words (PS3.8 Table 9-21)."""
    primitive = getattr(getattr(assoc, "acceptor", None), "primitive", None)
    reason = getattr(primitive, "diagnostic", None) if primitive is not None else None
    reasons = {1: "no reason given", 2: "application context not supported",
               3: "calling AE title not recognised", 7: "called AE title not recognised"}
    return reasons.get(reason, f"reason {reason}" if reason is not None else "no reason given")


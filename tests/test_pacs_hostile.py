"""A hostile or broken DICOMweb archive never hangs, crashes or leaks: one line, exit 2 (pull: exit 1 when
something is missing), bounded time and memory.

`_Archive` is a real HTTP server on a free loopback port (http.server in a thread) that serves a small archive
(QIDO-RS series and instances, WADO-RS metadata and instances, real DICOM bytes written with pydicom) and
misbehaves in one way per `mode`.
"""

from __future__ import annotations

import datetime as dt
import http.server
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from modan_dicom.cli import main
from modan_dicom.errors import PacsError
from modan_dicom.pacs.address import parse_address
from modan_dicom.pacs.archive import Archive, Limits
from modan_dicom.pacs.census import run_census
from modan_dicom.pacs.dicomweb import DicomwebArchive
from modan_dicom.pacs.pull import PULL_FILE, run_pull

pytestmark = pytest.mark.timeout(30)

BOUNDARY = "modan-boundary"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _instance_bytes(study: str, series: str, sop: str) -> bytes:
    """A small, whole CT image (Part 10, explicit VR little endian)."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientID, ds.PatientName = "PAT-SECRET-7", "Doe^Jane"
    ds.Modality, ds.BodyPartExamined, ds.InstanceNumber = "CT", "CHEST", 1
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (np.arange(256, dtype=np.uint16) * 7).tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms wait for a delayed ACK
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        server = self.server
        server.requests += 1
        server.authorizations.append(self.headers.get("Authorization"))
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        path = parts.path.removeprefix("/dicom-web")
        mode = server.mode
        try:
            if mode == "redirect_loop":
                return self._redirect(self.path)
            if mode == "redirect_off_host" and server.other is not None:
                return self._redirect(f"http://localhost:{server.other.server_address[1]}{self.path}")
            if mode == "trickle":
                return self._trickle()
            if mode == "endless":
                return self._endless()
            if path == "/series":
                return self._json(server.series_page(query))
            pieces = path.strip("/").split("/")
            if len(pieces) == 5 and pieces[4] == "instances":
                return self._json(server.instances(pieces[1], pieces[3], query))
            if len(pieces) == 7 and pieces[6] == "metadata":
                if mode == "slow_metadata":
                    return self._trickle()
                return self._json([server.metadata(pieces[5])])
            if len(pieces) == 6:
                return self._instance(pieces[1], pieces[3], pieces[5])
            self._send(404, b"", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass

    # ---- answers --------------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, answer: Any) -> None:
        body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self._send(200, body, "application/dicom+json")

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        for _ in range(100):  # one byte every 0.2 s: no single wait is long, the whole is endless
            if self.server.stopping.wait(0.2):
                return
            self.wfile.write(b" ")
            self.wfile.flush()

    def _endless(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        record = json.dumps({"0020000E": {"vr": "UI", "Value": ["1.2.3"]}}).encode() + b","
        chunk = b"[" + record * 2000
        while not self.server.stopping.is_set():
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            chunk = record * 2000

    def _instance(self, study: str, series: str, sop: str) -> None:
        server = self.server
        if server.mode == "fail_all":
            return self._send(500, b"no", "text/plain")
        if server.mode == "stall_instance":  # says nothing until the client gives up
            server.stopping.wait(5)
            return None
        data = _instance_bytes(study, series, sop)
        if server.mode == "truncated_instance":
            data = data[:len(data) - 100]  # cut inside the pixel data; the message itself is well formed
        head = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        if server.mode == "unclosed_multipart":
            tail = b""
        self._send(200, head + data + tail, f'multipart/related; type="application/dicom"; boundary={BOUNDARY}')


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, n_series: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "honest"
        self.requests = 0
        self.authorizations: list[str | None] = []
        self.stopping = threading.Event()
        self.other: _Server | None = None
        start = dt.date(2020, 1, 1)
        self.records = [{"study": f"1.2.826.0.1.3680043.99.{i}", "series": f"1.2.826.0.1.3680043.99.{i}.1",
                         "sop": f"1.2.826.0.1.3680043.99.{i}.1.1",
                         "date": (start + dt.timedelta(days=10 * i)).strftime("%Y%m%d")} for i in range(n_series)]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up (as it should on a hostile answer) is no error here

    def uids(self) -> list[str]:
        return [r[key] for r in self.records for key in ("study", "series", "sop")]

    def _series_json(self, record: dict[str, str]) -> dict[str, Any]:
        count: Any = [1]
        date: Any = [record["date"]]
        if self.mode == "huge_int":
            count = [99999999999999999999]  # 20 digits: parses, but no count is that large
        if self.mode == "impossible_date":
            date = ["20231345"]
        item = {"0020000D": {"vr": "UI", "Value": [record["study"]]},
                "0020000E": {"vr": "UI", "Value": [record["series"]]},
                "00100020": {"vr": "LO", "Value": ["PAT-SECRET-7"]},
                "00080020": {"vr": "DA", "Value": date},
                "00080060": {"vr": "CS", "Value": ["CT"]},
                "00180015": {"vr": "CS", "Value": ["CHEST"]},
                "00201209": {"vr": "IS", "Value": count}}
        if self.mode == "wrong_type_value":
            item["00080060"] = {"vr": "CS", "Value": 5}  # a number, not an array
        if self.mode == "wrong_type_item":
            item["00080060"] = {"vr": "CS", "Value": [{"CT": 1}]}  # an object where a code string belongs
        if self.mode == "wrong_type_attribute":
            item["00180015"] = ["CHEST"]  # an array, not an attribute object
        return item

    def series_page(self, query: dict[str, list[str]]) -> Any:
        if self.mode == "deep_json":
            return b"[" * 100_000 + b"]" * 100_000
        if self.mode == "long_number":
            return b'[{"00201209": {"vr": "IS", "Value": [1' + b"0" * 5000 + b"]}}]"
        records = self.records
        dates = query.get("StudyDate", [""])[0]
        if dates and self.mode != "ignores_dates":
            low, _, high = dates.partition("-")
            records = [r for r in records if (low or "0") <= r["date"] <= (high or "9")]
        limit = int(query.get("limit", ["1000"])[0])
        offset = int(query.get("offset", ["0"])[0])
        if self.mode == "ignores_offset":
            offset = 0
        if self.mode == "endless_pages":  # a fresh page of new series every time, for ever
            return [{"0020000E": {"vr": "UI", "Value": [f"1.2.3.{offset + k}"]},
                     "00080020": {"vr": "DA", "Value": ["20200101"]}} for k in range(limit)]
        return [self._series_json(r) for r in records[offset:offset + limit]]

    def instances(self, study: str, series: str, query: dict[str, list[str]]) -> Any:
        found = [r for r in self.records if r["series"] == series]
        return [{"00080018": {"vr": "UI", "Value": [r["sop"]]}, "00080016": {"vr": "UI", "Value": [CT_IMAGE]},
                 "00200013": {"vr": "IS", "Value": [1]}} for r in found]

    def metadata(self, sop: str) -> dict[str, Any]:
        return {"00080018": {"vr": "UI", "Value": [sop]}, "00080060": {"vr": "CS", "Value": ["CT"]}}


@pytest.fixture
def archive_server() -> Iterator[_Server]:
    servers = [_Server(12), _Server(12)]
    servers[0].other = servers[1]
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
               for s in servers]
    for thread in threads:
        thread.start()
    yield servers[0]
    for server in servers:
        server.stopping.set()
        server.shutdown()
        server.server_close()


def _url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/dicom-web"


def _archive(server: _Server, **limits: Any) -> DicomwebArchive:
    return DicomwebArchive(parse_address(_url(server)), timeout_s=10.0, page_size=5, limits=Limits(**limits))


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Archive, "backoff_s", 0.01)


def test_an_honest_server_gives_the_whole_census(archive_server: _Server) -> None:
    result = run_census(_url(archive_server), salt="s", query_cap=5, archive=_archive(archive_server))
    assert len(result.frame) == 12 and set(result.frame["status"]) == {"ok"}
    assert result.queries == archive_server.requests


# ---- item 2: the census never hangs ----------------------------------------------------------------------


def test_a_server_that_ignores_the_paging_offset_ends_the_census(archive_server: _Server) -> None:
    archive_server.mode = "ignores_offset"
    with pytest.raises(PacsError, match="a page it had sent already"):
        run_census(_url(archive_server), salt="s", archive=_archive(archive_server))
    assert archive_server.requests == 2


def test_a_server_that_ignores_the_date_filter_ends_the_census(archive_server: _Server, tmp_path: Path) -> None:
    archive_server.mode = "ignores_dates"
    with pytest.raises(PacsError, match="outside the Study Date range"):
        run_census(_url(archive_server), salt="s", query_cap=5, archive=_archive(archive_server))
    assert archive_server.requests < 20
    code, output = _cli("index", _url(archive_server), "-o", str(tmp_path / "c.parquet"), "--salt", "s",
                        "--study-date", "20200101-20200301")
    assert code == 2 and "ignores the date filter" in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1


def test_an_endless_answer_is_cut_at_the_size_cap(archive_server: _Server) -> None:
    archive_server.mode = "endless"
    started = time.monotonic()
    with pytest.raises(PacsError, match="larger than 1 MiB"):
        run_census(_url(archive_server), salt="s", archive=_archive(archive_server, max_json_bytes=2 ** 20))
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("mode", ["trickle", "slow_metadata"])
def test_a_trickling_server_meets_the_deadline(archive_server: _Server, mode: str) -> None:
    archive_server.mode = mode
    started = time.monotonic()
    if mode == "trickle":
        with pytest.raises(PacsError, match="no complete answer within 1 s"):
            run_census(_url(archive_server), salt="s", archive=_archive(archive_server, deadline_s=1.0))
        assert time.monotonic() - started < 4
        return
    # item 6: the per-series metadata question times out; the error rows and messages hold no UID
    archive_server.records = archive_server.records[:2]
    archive = _archive(archive_server, deadline_s=0.5)
    archive_server.series_page = lambda query: [{**archive_server._series_json(r), "00180015": {"vr": "CS"}}
                                                for r in archive_server.records]
    result = run_census(_url(archive_server), salt="s", archive=archive, workers=2)
    errors = result.frame["error"].dropna().tolist()
    assert len(errors) == 2 and all("no complete answer within 0.5 s" in e for e in errors)
    assert not any(uid in e for e in errors for uid in archive_server.uids())
    assert time.monotonic() - started < 10


def test_a_census_sends_at_most_max_queries(archive_server: _Server) -> None:
    archive_server.mode = "endless_pages"
    with pytest.raises(PacsError, match="stopped after 25 queries"):
        run_census(_url(archive_server), salt="s", archive=_archive(archive_server), max_queries=25)
    assert archive_server.requests == 25


# ---- items 4 and 11: one line, not a traceback ---------------------------------------------------------------


@pytest.mark.parametrize(("mode", "words"), [
    ("redirect_loop", "more than 5 redirects"),
    ("redirect_off_host", "a redirect to another server (http://localhost:"),
    ("deep_json", "nests deeper than 40"),
    ("wrong_type_value", "a Value is not a JSON array"),
    ("wrong_type_item", "a Modality value is not a string or a number"),
    ("wrong_type_attribute", "an attribute is not a JSON object"),
    ("long_number", "a number is far out of range"),
])
def test_broken_answers_are_one_line(archive_server: _Server, mode: str, words: str, tmp_path: Path) -> None:
    archive_server.mode = mode
    code, output = _cli("index", _url(archive_server), "-o", str(tmp_path / "c.parquet"), "--salt", "s")
    assert code == 2 and words in output and _url(archive_server) in output, output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1
    assert not (tmp_path / "c.parquet").exists()
    if mode == "redirect_off_host":
        assert archive_server.other is not None and archive_server.other.requests == 0


def test_a_redirect_off_host_is_followed_when_asked_without_the_credentials(
        archive_server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODAN_DICOMWEB_TOKEN", "tok-SECRET")
    archive_server.mode = "redirect_off_host"
    other = archive_server.other
    assert other is not None
    result = run_census(_url(archive_server), salt="s", archive=_archive(archive_server, redirects_off_host=True))
    assert len(result.frame) == 12 and other.requests > 0
    assert set(archive_server.authorizations) == {"Bearer tok-SECRET"} and set(other.authorizations) == {None}


@pytest.mark.parametrize("mode", ["huge_int", "impossible_date"])
def test_odd_values_in_an_answer_do_not_stop_the_census(archive_server: _Server, mode: str) -> None:
    archive_server.mode = mode
    result = run_census(_url(archive_server), salt="s", query_cap=5, archive=_archive(archive_server))
    assert len(result.frame) == 12
    if mode == "huge_int":
        assert result.frame["instances"].isna().all()
    else:
        assert result.frame["study_month"].isna().all()


def test_an_impossible_study_date_option_is_one_line(archive_server: _Server, tmp_path: Path) -> None:
    code, output = _cli("index", _url(archive_server), "-o", str(tmp_path / "c.parquet"), "--salt", "s",
                        "--study-date", "20231345")
    assert code == 2 and "not a calendar date" in output and len(output.strip().splitlines()) == 1
    assert archive_server.requests == 0


# ---- item 8: an instance counts only when it arrived whole ---------------------------------------------------


@pytest.mark.parametrize("mode", ["truncated_instance", "unclosed_multipart"])
def test_a_truncated_instance_is_not_kept_and_is_fetched_again(archive_server: _Server, mode: str,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "pulled"
    archive_server.mode = mode
    first = run_pull(_url(archive_server), out, salt="s", workers=2, archive=_archive(archive_server))
    assert first.pulled == 0 and first.errors == 12 and first.missing == 12
    assert set(first.frame["status"]) == {"error"} and not list(out.rglob("*.dcm"))
    words = "cut short" if mode == "truncated_instance" else "no closing delimiter"
    assert all(words in e for e in first.frame["error"])
    assert not any(uid in e for e in first.frame["error"] for uid in archive_server.uids())
    archive_server.mode = "honest"
    second = run_pull(_url(archive_server), out, salt="s", workers=2, archive=_archive(archive_server))
    assert (second.pulled, second.present, second.missing) == (12, 0, 0)
    assert len(list(out.rglob("*.dcm"))) == 12


def test_retrievals_that_time_out_leave_no_uid_in_the_pull(archive_server: _Server, tmp_path: Path) -> None:
    archive_server.records = archive_server.records[:2]
    archive_server.mode = "stall_instance"
    archive = DicomwebArchive(parse_address(_url(archive_server)), timeout_s=0.3, limits=Limits(deadline_s=5.0))
    result = run_pull(_url(archive_server), tmp_path / "pulled", salt="s", workers=2, archive=archive)
    assert result.missing == 2 and all("no answer within 0.3 s" in e for e in result.frame["error"])
    assert not any(uid in str(value) for value in result.frame.to_numpy().ravel() for uid in archive_server.uids())


def test_a_pull_where_every_instance_fails_exits_non_zero(archive_server: _Server, tmp_path: Path) -> None:
    archive_server.mode = "fail_all"
    code, output = _cli("pull", _url(archive_server), "--out", str(tmp_path / "pulled"), "--salt", "s")
    assert code == 1 and "12 failed" in output and "Traceback" not in output, output
    assert not any(uid in output for uid in archive_server.uids())
    archive_server.mode = "honest"
    code, output = _cli("pull", _url(archive_server), "--out", str(tmp_path / "pulled"), "--salt", "s")
    assert code == 0 and "pulled 12 instances" in output, output


# ---- DIMSE: the same bounds (a pynetdicom archive on loopback) ---------------------------------------------


@pytest.fixture
def dimse_server() -> Iterator[tuple[str, dict[str, Any]]]:
    from pydicom import dcmread
    from pynetdicom import AE, StoragePresentationContexts, evt
    from pynetdicom.sop_class import (
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelGet,
    )

    from modan_dicom.pacs.orthanc import free_port

    instance = dcmread(io.BytesIO(_instance_bytes("1.2.826.0.1.3680043.99.1", "1.2.826.0.1.3680043.99.1.1",
                                                  "1.2.826.0.1.3680043.99.1.1.1")))
    state: dict[str, Any] = {"endless": False, "finds": 0, "stop": threading.Event()}

    def on_find(event: Any) -> Iterator[Any]:
        state["finds"] += 1
        while state["endless"] and not state["stop"].is_set():  # pending matches for ever
            time.sleep(0.01)
            yield 0xFF00, instance
        yield 0xFF00, instance

    def on_get(event: Any) -> Iterator[Any]:
        yield 1
        yield 0xFF00, instance

    ae = AE("PACS")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelGet)
    for context in StoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, scu_role=True, scp_role=True)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_FIND, on_find), (evt.EVT_C_GET, on_get)])
    yield f"dimse://PACS@127.0.0.1:{port}", state
    state["stop"].set()
    server.shutdown()


def test_dimse_retrieval_is_checked_and_queries_are_counted(dimse_server: tuple[str, dict[str, Any]]) -> None:
    from modan_dicom.pacs.archive import QueryBudget
    from modan_dicom.pacs.dimse import DimseArchive

    url, state = dimse_server
    with DimseArchive(parse_address(url), timeout_s=5.0, limits=Limits(deadline_s=1.0)) as archive:
        got = archive.retrieve("1.2.826.0.1.3680043.99.1", "1.2.826.0.1.3680043.99.1.1",
                               "1.2.826.0.1.3680043.99.1.1.1", CT_IMAGE)
        assert len(got.PixelData) == 512 and got.PatientID == "PAT-SECRET-7"
        archive.budget = QueryBudget(2)
        for _ in range(2):
            assert len(archive.series_instances("1.2.826.0.1.3680043.99.1", "1.2.826.0.1.3680043.99.1.1").records) == 1
        with pytest.raises(PacsError, match="stopped after 2 queries"):
            archive.series_instances("1.2.826.0.1.3680043.99.1", "1.2.826.0.1.3680043.99.1.1")
        assert state["finds"] == 2
        state["endless"] = True
        archive.budget = None
        started = time.monotonic()
        with pytest.raises(PacsError, match="took more than 1 s"):
            archive.series_instances("1.2.826.0.1.3680043.99.1", "1.2.826.0.1.3680043.99.1.1")
        assert time.monotonic() - started < 5


def test_a_pull_folder_from_before_the_checks_has_its_cut_files_fetched_again(archive_server: _Server,
                                                                             tmp_path: Path) -> None:
    out = tmp_path / "pulled"
    assert run_pull(_url(archive_server), out, salt="s", archive=_archive(archive_server)).pulled == 12
    settings = out / PULL_FILE
    old = json.loads(settings.read_text())
    del old["verified"]  # as a pull written before instances were checked
    settings.write_text(json.dumps(old))
    cut = sorted(out.rglob("*.dcm"))[3]
    cut.write_bytes(cut.read_bytes()[:-300])
    again = run_pull(_url(archive_server), out, salt="s", archive=_archive(archive_server))
    assert (again.pulled, again.present, again.missing) == (1, 11, 0)
    assert len(cut.read_bytes()) > 600

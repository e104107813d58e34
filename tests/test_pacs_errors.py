"""Bad archives and bad addresses: one line naming the server, exit status 2, retries for what is transient."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from modan_dicom.cli import main
from modan_dicom.errors import ConfigError, PacsError
from modan_dicom.pacs.address import parse_address
from modan_dicom.pacs.census import run_census
from modan_dicom.pacs.crawl import Crawl
from modan_dicom.pacs.archive import Answer, DateRange
from modan_dicom.pacs.orthanc import free_port


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


# ---- addresses ------------------------------------------------------------------------------------------


def test_addresses_parse_and_credentials_stay_out_of_urls() -> None:
    web = parse_address("https://pacs.example.org/dicom-web/")
    assert (web.protocol, web.url, web.port) == ("dicomweb", "https://pacs.example.org/dicom-web", 443)
    dimse = parse_address("dimse://ORTHANC@10.0.0.5:4242", calling_aet="RESEARCH")
    assert (dimse.protocol, dimse.called_aet, dimse.host, dimse.port, dimse.calling_aet) == (
        "dimse", "ORTHANC", "10.0.0.5", 4242, "RESEARCH")
    with pytest.raises(ConfigError, match="credentials in the URL"):
        parse_address("https://alice:secret@pacs.example.org/dicom-web")
    with pytest.raises(ConfigError, match="AET@HOST:PORT"):
        parse_address("dimse://pacs:4242")
    with pytest.raises(ConfigError, match="AE title"):
        parse_address("dimse://A_TITLE_FAR_TOO_LONG@pacs:4242")
    code, output = _cli("index", "https://alice:secret@pacs.example.org/dicom-web", "-o", "x.parquet")
    assert code == 2 and "secret" not in output and "MODAN_DICOMWEB_TOKEN" in output


def test_folder_only_and_archive_only_options_do_not_mix(tmp_path: Path) -> None:
    code, output = _cli("index", str(tmp_path), "-o", str(tmp_path / "i.parquet"), "--level", "instance")
    assert code == 2 and "--level" in output and "archive" in output


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/dicom-web", "dimse://PACS@127.0.0.1:{port}"])
def test_unreachable_archive_is_one_line(url: str, tmp_path: Path) -> None:
    address = url.format(port=free_port())
    with pytest.raises(PacsError, match="cannot connect"):
        run_census(address, salt="s")
    code, output = _cli("index", address, "-o", str(tmp_path / "c.parquet"), "--salt", "s")
    assert code == 2 and "cannot connect" in output and address.split("//")[1].split("/")[0] in output
    assert "Traceback" not in output and not (tmp_path / "c.parquet").exists()


# ---- a misbehaving DICOMweb server (a real HTTP server that answers badly) -------------------------------


class _Bad(http.server.BaseHTTPRequestHandler):
    mode = "json"
    calls = 0

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).calls += 1
        if self.mode == "json":
            self._send(200, b"{this is not json")
        elif self.mode == "drop":
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(b'[{"0020000D": ')
            self.wfile.flush()
            self.connection.shutdown(2)
        elif self.mode == "busy":  # 503 then 429, then a valid empty answer
            if type(self).calls <= 2:
                self._send(503 if type(self).calls == 1 else 429, b"busy")
            else:
                self._send(200, json.dumps([]).encode())
        elif self.mode == "forbidden":
            self._send(403, b"no")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def bad_server() -> Iterator[tuple[str, type[_Bad]]]:
    handler = type("Handler", (_Bad,), {"calls": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/dicom-web", handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("mode", "words"), [("json", "not valid DICOMweb"), ("drop", "dropped"),
                                             ("forbidden", "HTTP 403")])
def test_bad_answers_are_one_line(bad_server, mode: str, words: str, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from modan_dicom.pacs.archive import Archive

    monkeypatch.setattr(Archive, "backoff_s", 0.01)
    url, handler = bad_server
    handler.mode = mode
    with pytest.raises(PacsError, match=words):
        run_census(url, salt="s")
    code, output = _cli("index", url, "-o", str(tmp_path / "c.parquet"), "--salt", "s")
    assert code == 2 and words in output and url in output and "Traceback" not in output
    assert not (tmp_path / "c.parquet").exists()


def test_transient_failures_are_retried(bad_server, monkeypatch: pytest.MonkeyPatch) -> None:
    from modan_dicom.pacs.archive import Archive

    monkeypatch.setattr(Archive, "backoff_s", 0.01)
    url, handler = bad_server
    handler.mode = "busy"
    result = run_census(url, salt="s")
    assert len(result.frame) == 0 and handler.calls == 3


@pytest.mark.orthanc
def test_credentials_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import _need_orthanc

    from modan_dicom.pacs.orthanc import LocalOrthanc

    _need_orthanc()
    monkeypatch.delenv("MODAN_DICOMWEB_TOKEN", raising=False)
    monkeypatch.delenv("MODAN_DICOMWEB_USER", raising=False)
    with LocalOrthanc(tmp_path / "orthanc", users={"alice": "s3cret-pw"}) as pacs:
        code, output = _cli("index", pacs.dicomweb_url, "-o", str(tmp_path / "c.parquet"), "--salt", "s")
        assert code == 2 and "HTTP 401" in output and "MODAN_DICOMWEB_USER" in output
        monkeypatch.setenv("MODAN_DICOMWEB_USER", "alice")
        monkeypatch.setenv("MODAN_DICOMWEB_PASSWORD", "s3cret-pw")
        code, output = _cli("index", pacs.dicomweb_url, "-o", str(tmp_path / "c.parquet"), "--salt", "s")
        assert code == 0, output
        assert "s3cret-pw" not in output


# ---- the crawl over a capped answer (an archive of records that stops at `cap` matches) -------------------


def _capped(records: list[dict[str, str]], cap: int, says: bool):
    def search(dates: DateRange) -> Answer:
        inside = [r for r in records if (dates.start or "0") <= r["StudyDate"] <= (dates.end or "99999999")]
        return Answer(inside[:cap + 1] if not says else inside[:cap], truncated=(len(inside) > cap) if says else None)
    return search


@pytest.mark.parametrize("says,workers", [(True, 1), (False, 1), (False, 4)])
def test_crawl_recovers_every_record_of_a_capped_archive(says: bool, workers: int) -> None:
    import datetime as dt

    records = [{"SeriesInstanceUID": f"1.2.{i}", "StudyDate": (dt.date(2015, 1, 1) + dt.timedelta(days=i // 7)).strftime("%Y%m%d")}
               for i in range(1500)]
    crawl = Crawl(_capped(records, 100, says), key="SeriesInstanceUID", today=dt.date(2026, 1, 1), workers=workers)
    found = crawl.run(DateRange())
    assert sorted(r["SeriesInstanceUID"] for r in found) == sorted(r["SeriesInstanceUID"] for r in records)
    assert crawl.capped and crawl.queries < 200 and not crawl.warnings
    if workers > 1:  # the split parts asked at once give what one at a time gives, query for query
        alone = Crawl(_capped(records, 100, says), key="SeriesInstanceUID", today=dt.date(2026, 1, 1))
        assert [r["SeriesInstanceUID"] for r in alone.run(DateRange())] == [r["SeriesInstanceUID"] for r in found]
        assert alone.queries == crawl.queries


def test_crawl_trusts_a_complete_answer_and_warns_on_an_unsplittable_day() -> None:
    import datetime as dt

    records = [{"SeriesInstanceUID": f"1.{i}", "StudyDate": "20200101" if i < 150 else "20210101"} for i in range(160)]
    complete = Crawl(_capped(records, 10_000, True), key="SeriesInstanceUID", today=dt.date(2026, 1, 1))
    assert len(complete.run(DateRange())) == 160 and complete.queries <= 4 and not complete.warnings
    capped = Crawl(_capped(records, 100, True), key="SeriesInstanceUID", today=dt.date(2026, 1, 1))
    found = capped.run(DateRange())
    assert 100 <= len(found) < 160 and any("20200101" in w for w in capped.warnings)


def test_an_answer_short_of_the_archives_count_is_asked_again() -> None:
    from modan_dicom.pacs.archive import until_complete

    answers = iter([Answer([{}] * 7, False), Answer([{}] * 9, False), Answer([{}] * 10, False), Answer([{}] * 10)])
    assert len(until_complete(lambda: next(answers), 10).records) == 10  # a lost response, then another
    answers = iter([Answer([{}] * 4, True), Answer([{}] * 10)])
    assert len(until_complete(lambda: next(answers), 10).records) == 4  # the archive said it cut: the crawl splits
    asked = []
    assert len(until_complete(lambda: asked.append(1) or Answer([{}] * 3), 10, tries=3).records) == 3
    assert len(asked) == 3  # gives up after `tries`; what was found is kept
    assert len(until_complete(lambda: asked.append(1) or Answer([]), None).records) == 0 and len(asked) == 4


def test_a_response_dropped_by_pynetdicom_is_noticed_per_association() -> None:
    import logging

    from modan_dicom.pacs.dimse import _DROPPED

    logger = logging.getLogger("pynetdicom.association")
    seen: list[int] = []

    def reactor() -> None:  # what pynetdicom's reactor thread logs when it takes a C-FIND response
        seen.append(threading.get_ident())
        logger.warning("Received unexpected C-FIND service message")

    thread = threading.Thread(target=reactor)
    thread.start()
    thread.join()
    assert not _DROPPED.take(threading.get_ident())  # another association: nothing lost there
    assert _DROPPED.take(seen[0]) and not _DROPPED.take(seen[0])  # noticed once

"""Census and pull against a real local Orthanc (issue 7, "Measured").

    python benchmarks/bench_pacs.py [--series 400] [--per-series 50] [--repeats 3] [--keep DIR] [--json FILE]
        [--protocols dicomweb,dimse] [--pull-protocols dicomweb,dimse] [--pull-series N] [--dimse-pull-series N]
        [--as-packaged] [--orthanc-dicom-threads N] [--latency-ms MS]

Builds an Orthanc holding --series x --per-series instances (default 400 x 50 = 20,000): a few template
images of a small synthetic export (CT, MR, US, each with its Body Part Examined and descriptions) are
written again with pydicom under new Study / Series / SOP Instance UIDs (--series-per-study series per
study, several studies per patient, Study Dates spread over ten years, Instance Numbers 1..N), then
uploaded through Orthanc's REST API (`LocalOrthanc.upload`, 4 workers). With --keep DIR the Orthanc
storage is kept in DIR and reused by the next run (the upload is skipped when it holds the right count).

Then, in the same run and against the same archive, for each protocol (DICOMweb and DIMSE):

- census: `run_census(url, level="series")` against the instance-level crawl `level="instance"`
  (best of --repeats each; target: series level >= 10x faster), in seconds and series/s;
- pull: `run_pull(url, out, per_series=1, workers=4)` against `workers=1` (one instance at a time),
  a fresh output folder each time (best of --repeats each; target >= 3x), in instances/s. --pull-series N
  pulls the first N series (by pseudonym) through a census file; default: every series.

--latency-ms MS repeats the pull through a relay that holds every chunk MS milliseconds each way (`DelayProxy`):
the archive as it is from a workstation on another machine (a hospital network, a cloud DICOMweb service),
where each request waits for the network rather than for a CPU it shares with the archive.

Every measured run also records the CPU seconds spent by this process and by the Orthanc server (from
/proc), which says where the time goes when both share the same cores, and whether its answer was
complete (every series and instance found, every instance pulled); the best complete run is kept. A last
section times the steps of one retrieval (instance listing, WADO-RS / C-GET, de-identification, writing)
one instance at a time.

Orthanc runs as docs/pacs.md advises (TCP_NODELAY=1 in its environment: its DICOM library turns Nagle's
algorithm off) unless --as-packaged; --orthanc-dicom-threads sets how many associations it serves at once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SALT = "bench-pacs"
UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # pydicom's root, as the synthetic export uses
PLAIN_SYNTAXES = ("explicit_le", "implicit_le")
STATE_FILE = "bench-pacs.json"


# ---- the archive -----------------------------------------------------------------------------------------


def _templates(work: Path) -> list[Any]:
    """One uncompressed single-frame image per (modality, anatomy) of a small synthetic export, whose labels
    the series-level attributes decide (status ok)."""
    import csv

    import pydicom

    from modan_dicom.synth import synth_export

    export = work / "templates"
    if not (export / "manifest.csv").exists():
        synth_export(export, seed=0, n_patients=4, image_size=32)
    chosen: dict[tuple[str, str], Any] = {}
    with open(export / "manifest.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            key = (row["modality_code"], row["anatomy"])
            if (row["status"] != "ok" or row["kind"] != "image" or row["n_frames"] != "1"
                    or row["syntax"] not in PLAIN_SYNTAXES or row["preamble"] != "1" or key in chosen):
                continue
            ds = pydicom.dcmread(export / row["path"])
            ds.PixelData  # noqa: B018 - a complete file only
            chosen[key] = ds
    return [chosen[k] for k in sorted(chosen)]


def _uid(kind: str, *numbers: int) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(UID_PREFIX, entropy_srcs=[f"bench-pacs/{kind}/" + "/".join(map(str, numbers))])


def write_archive_files(folder: Path, templates: list[Any], series: int, per_series: int,
                        series_per_study: int) -> int:
    """Write `series` x `per_series` instances into `folder` (one folder per series); returns the count."""
    import datetime as dt

    studies = -(-series // series_per_study)
    first_day = dt.date(2015, 1, 1)
    written = 0
    for study in range(studies):
        template = templates[study % len(templates)]
        patient = study // 3  # about three studies per patient
        day = first_day + dt.timedelta(days=(study * 3659 // max(1, studies)))  # spread over ten years
        study_uid = _uid("study", study)
        for s in range(min(series_per_study, series - study * series_per_study)):
            number = study * series_per_study + s
            series_uid = _uid("series", number)
            target = folder / f"st{study:04d}" / f"se{s:02d}"
            target.mkdir(parents=True, exist_ok=True)
            ds = template
            ds.PatientID = f"BENCH{patient:05d}"
            ds.PatientName = f"BENCH^PATIENT{patient:05d}"
            ds.StudyInstanceUID = study_uid
            ds.StudyID = str(study + 1)
            ds.AccessionNumber = f"ACC{study:06d}"
            ds.StudyDate = ds.SeriesDate = ds.ContentDate = day.strftime("%Y%m%d")
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = s + 1
            for i in range(per_series):
                sop = _uid("sop", number, i)
                ds.SOPInstanceUID = sop
                ds.file_meta.MediaStorageSOPInstanceUID = sop
                ds.InstanceNumber = i + 1
                ds.save_as(target / f"{i + 1:03d}.dcm")
                written += 1
    return written


def prepare_archive(args: argparse.Namespace, work: Path) -> tuple[Any, dict[str, Any]]:
    """A started LocalOrthanc holding the archive (built, or reused from --keep), and how it was made."""
    from modan_dicom.pacs.orthanc import LocalOrthanc

    folder = work / "orthanc"
    state_path = work / STATE_FILE
    wanted = {"series": args.series, "per_series": args.per_series, "series_per_study": args.series_per_study}
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    reuse = state.get("archive") == wanted and (folder / "storage").is_dir()
    if not reuse and folder.exists():
        shutil.rmtree(folder)
    pacs = LocalOrthanc(folder, http_threads=args.http_threads, tcp_nodelay=not args.as_packaged,
                        dicom_threads=args.orthanc_dicom_threads).start()
    try:
        return pacs, _fill(pacs, args, work, reuse, state)
    except BaseException:
        pacs.stop()  # never leave a server behind
        raise


def _fill(pacs: Any, args: argparse.Namespace, work: Path, reuse: bool, state: dict[str, Any]) -> dict[str, Any]:
    """Upload the archive into a started, empty `pacs` (or check the one --keep kept); returns its state."""
    expected = args.series * args.per_series
    wanted = {"series": args.series, "per_series": args.per_series, "series_per_study": args.series_per_study}
    counts = pacs.statistics()
    if reuse and int(counts["CountInstances"]) == expected:
        print(f"reusing the Orthanc storage in {pacs.folder}: {counts['CountInstances']} instances, "
              f"{counts['CountSeries']} series", flush=True)
        return state
    if int(counts["CountInstances"]):
        raise SystemExit(f"{pacs.folder} holds {counts['CountInstances']} instances, not {expected}: remove it")
    files = work / "files"
    shutil.rmtree(files, ignore_errors=True)
    start = time.perf_counter()
    written = write_archive_files(files, _templates(work), args.series, args.per_series, args.series_per_study)
    t_write = time.perf_counter() - start
    print(f"wrote {written} files with pydicom in {t_write:.1f} s", flush=True)
    start = time.perf_counter()
    stored = pacs.upload(files, workers=4)
    t_upload = time.perf_counter() - start
    counts = pacs.statistics()
    print(f"uploaded {stored} instances in {t_upload:.1f} s ({stored / t_upload:.0f} instances/s, 4 workers); "
          f"Orthanc holds {counts['CountPatients']} patients, {counts['CountStudies']} studies, "
          f"{counts['CountSeries']} series, {counts['CountInstances']} instances, "
          f"{int(counts['TotalDiskSizeMB'])} MB", flush=True)
    if int(counts["CountInstances"]) != expected:
        raise SystemExit(f"Orthanc holds {counts['CountInstances']} instances, not {expected}")
    shutil.rmtree(files, ignore_errors=True)  # Orthanc keeps its own copy
    state = {"archive": wanted, "write_s": t_write, "upload_s": t_upload, "counts": counts}
    (work / STATE_FILE).write_text(json.dumps(state, indent=1))
    return state


# ---- measuring ---------------------------------------------------------------------------------------------


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid` and its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Timer:
    """Best of `repeats` calls of a function: wall seconds, and the CPU seconds this process and Orthanc
    used during that best call."""

    def __init__(self, orthanc_pid: int, repeats: int) -> None:
        self.pid = orthanc_pid
        self.repeats = repeats

    def best(self, fn: Callable[[int], Any]) -> dict[str, Any]:
        runs = []
        for rep in range(self.repeats):
            ours, theirs = _own_cpu(), _cpu_of(self.pid)
            start = time.perf_counter()
            outcome = fn(rep)
            wall = time.perf_counter() - start
            runs.append({"seconds": wall, "our_cpu_s": _own_cpu() - ours, "orthanc_cpu_s": _cpu_of(self.pid) - theirs,
                         "outcome": outcome})
        complete = [r for r in runs if r["outcome"].get("complete", True)]
        best = min(complete or runs, key=lambda r: r["seconds"])  # an incomplete answer is no result
        return {**best, "all_seconds": [r["seconds"] for r in runs], "incomplete_runs": len(runs) - len(complete)}


def measure_census(url: str, timer: Timer, workers: int, series: int, instances: int) -> dict[str, dict[str, Any]]:
    from modan_dicom.pacs.census import run_census

    out: dict[str, dict[str, Any]] = {}
    for level in ("series", "instance"):
        def once(rep: int, level: str = level) -> dict[str, Any]:
            result = run_census(url, level=level, salt=SALT, workers=workers, return_frame=False)
            complete = result.series == series and result.instances == instances and not result.warnings
            if not complete:
                print(f"    INCOMPLETE census ({level}, run {rep + 1}): {result.series} of {series} series, "
                      f"{result.instances} of {instances} instances; warnings {result.warnings[:2]}", flush=True)
            return {"queries": result.queries, "series": result.series, "instances": result.instances,
                    "complete": complete}
        out[level] = timer.best(once)
        row = out[level]
        print(f"  census {level:8s} {row['seconds']:7.2f} s  {series / row['seconds']:8.1f} series/s  "
              f"{row['outcome']['queries']:5d} queries  (runs: {', '.join(f'{s:.2f}' for s in row['all_seconds'])})",
              flush=True)
    return out


def pull_census(url: str, work: Path, n: int) -> str | None:
    """A census file naming the first `n` ok series (by pseudonym) for the pull to take; None: all of them."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from modan_dicom.pacs.census import run_census

    path = work / f"pull-census-{n}.parquet"
    path.unlink(missing_ok=True)
    run_census(url, path, salt=SALT, return_frame=False)
    table = pq.read_table(path)
    ok = table.filter(pc.equal(table["status"], "ok")).sort_by("series_key")
    if n >= ok.num_rows:
        return None
    pq.write_table(ok.slice(0, n), path)  # the schema keeps the census metadata
    return str(path)


def measure_pull(url: str, timer: Timer, work: Path, workers: list[int], n_series: int,
                 census: str | None) -> dict[int, dict[str, Any]]:
    from modan_dicom.pacs.pull import run_pull

    out: dict[int, dict[str, Any]] = {}
    for w in workers:
        def once(rep: int, w: int = w) -> dict[str, Any]:
            target = work / f"pull-w{w}-r{rep}"
            shutil.rmtree(target, ignore_errors=True)
            result = run_pull(url, target, per_series=1, workers=w, salt=SALT, census=census)
            shutil.rmtree(target, ignore_errors=True)
            complete = result.pulled == n_series and not result.errors
            if not complete:
                print(f"    INCOMPLETE pull (workers={w}, run {rep + 1}): {result.pulled} of {n_series} pulled, "
                      f"{result.errors} errors {result.frame['error'].dropna().head(2).tolist()}", flush=True)
            return {"pulled": result.pulled, "errors": result.errors, "complete": complete}
        out[w] = timer.best(once)
        row = out[w]
        print(f"  pull workers={w}  {row['seconds']:7.2f} s  {n_series / row['seconds']:8.1f} instances/s  "
              f"(runs: {', '.join(f'{s:.2f}' for s in row['all_seconds'])})", flush=True)
    return out


def retrieval_steps(url: str, samples: int) -> dict[str, float]:
    """Milliseconds per instance of each step of a pull, one instance at a time (median of `samples`)."""
    import io

    from modan_dicom.ingest.index import load_vocabulary
    from modan_dicom.pacs.address import parse_address
    from modan_dicom.pacs.archive import DateRange, SeriesQuery, numbered_instances, open_archive
    from modan_dicom.pacs.deidentify import Deidentifier, stamp_labels

    archive = open_archive(parse_address(url), workers=1)
    deid = Deidentifier(SALT.encode())
    vocab = load_vocabulary("radimagenet")
    steps: dict[str, list[float]] = {"instance query": [], "retrieve": [], "de-identify + stamp": [], "write": []}
    try:
        series = archive.find_series(SeriesQuery(DateRange())).records[:samples]
        for record in series:
            count = int(record["NumberOfSeriesRelatedInstances"])
            start = time.perf_counter()
            instance = numbered_instances(archive, record["StudyInstanceUID"], record["SeriesInstanceUID"],
                                          [(count - 1) // 2 + 1])[0]  # what the pull asks for
            steps["instance query"].append(time.perf_counter() - start)
            kwargs = {"sop_class": instance.get("SOPClassUID")} if hasattr(archive, "max_storage_classes") else {}
            start = time.perf_counter()
            ds = archive.retrieve(record["StudyInstanceUID"], record["SeriesInstanceUID"], instance["SOPInstanceUID"],
                                  **kwargs)
            steps["retrieve"].append(time.perf_counter() - start)
            start = time.perf_counter()
            deid.deidentify(ds)
            stamp_labels(ds, None, "abdomen", vocab)
            steps["de-identify + stamp"].append(time.perf_counter() - start)
            start = time.perf_counter()
            ds.save_as(io.BytesIO(), enforce_file_format=True)
            steps["write"].append(time.perf_counter() - start)
    finally:
        archive.close()
    return {name: statistics.median(values) * 1e3 for name, values in steps.items()}


class DelayProxy:
    """A TCP relay on a free loopback port that holds every chunk `delay_s` before passing it on, both ways:
    an archive on another machine, `2 x delay_s` round trip away, for the loopback Orthanc (pure latency:
    no bandwidth limit, order kept)."""

    def __init__(self, upstream_port: int, delay_s: float) -> None:
        import asyncio
        import threading

        from modan_dicom.pacs.orthanc import free_port

        self.port, self.upstream_port, self.delay_s = free_port(), upstream_port, delay_s
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True, name="delay-proxy")
        self.thread.start()
        started.wait(10)

    async def _serve(self, client_reader: Any, client_writer: Any) -> None:
        import asyncio

        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pump(reader: Any, writer: Any) -> None:
            queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

            async def deliver() -> None:
                while True:
                    due, data = await queue.get()
                    wait = due - self.loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if not data:
                        writer.close()
                        return
                    writer.write(data)
                    await writer.drain()

            delivering = asyncio.ensure_future(deliver())
            try:
                while data := await reader.read(1 << 16):
                    queue.put_nowait((self.loop.time() + self.delay_s, data))
            finally:
                queue.put_nowait((self.loop.time() + self.delay_s, b""))
                await delivering

        await asyncio.gather(pump(client_reader, up_writer), pump(up_reader, client_writer), return_exceptions=True)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# ---- the run -----------------------------------------------------------------------------------------------


def _incomplete(row: dict[str, Any]) -> str:
    if not row["incomplete_runs"]:
        return ""
    best = "" if row["outcome"].get("complete", True) else ", this one too"
    return f"  ({row['incomplete_runs']} of {len(row['all_seconds'])} runs incomplete{best})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=400, help="Series in the archive.")
    parser.add_argument("--per-series", type=int, default=50, help="Instances per series.")
    parser.add_argument("--series-per-study", type=int, default=4, help="Series per study.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per measurement (best kept).")
    parser.add_argument("--workers", type=int, default=4, help="Concurrent queries / retrievals (census and pull).")
    parser.add_argument("--protocols", default="dicomweb,dimse", help="Protocols of the census comparison.")
    parser.add_argument("--pull-protocols", default="dicomweb,dimse", help="Protocols of the pull comparison.")
    parser.add_argument("--pull-series", type=int, default=0, help="Series the pull covers (0: all; 1 instance each).")
    parser.add_argument("--dimse-pull-series", type=int, default=0,
                        help="Series the DIMSE pull covers (0: as --pull-series); C-GET is slow against Orthanc.")
    parser.add_argument("--steps", type=int, default=30, help="Instances timed step by step (0: skip).")
    parser.add_argument("--http-threads", type=int, default=16, help="Orthanc's HttpThreadsCount.")
    parser.add_argument("--as-packaged", action="store_true",
                        help="Start Orthanc without TCP_NODELAY=1 (as packaged: its DICOM library, DCMTK, keeps "
                             "Nagle's algorithm on, ~40 ms stalls per DIMSE exchange). Default: as docs/pacs.md advises.")
    parser.add_argument("--orthanc-dicom-threads", type=int, default=0,
                        help="Orthanc's DicomThreadsCount (0: Orthanc's default, 4): associations served at once.")
    parser.add_argument("--latency-ms", type=float, default=0,
                        help="Also pull through a relay that delays every chunk this long each way (an archive "
                             "on another machine, twice this round trip away); 0: skip.")
    parser.add_argument("--keep", help="Keep the Orthanc storage in this folder and reuse it in later runs.")
    parser.add_argument("--json", help="Also write the numbers to this file.")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from modan_dicom.pacs.orthanc import orthanc_missing

    missing = orthanc_missing()
    if missing:
        raise SystemExit(missing)
    work = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="bench-pacs-"))
    work.mkdir(parents=True, exist_ok=True)
    series, instances = args.series, args.series * args.per_series
    load_before = os.getloadavg()[0]
    report: dict[str, Any] = {"series": series, "instances": instances, "repeats": args.repeats,
                              "workers": args.workers}
    pacs, state = prepare_archive(args, work)
    report["archive"] = state
    try:
        timer = Timer(pacs.process.pid, args.repeats)
        urls = {"dicomweb": pacs.dicomweb_url, "dimse": pacs.dimse_url}
        report["census"] = {}
        for protocol in [p for p in args.protocols.split(",") if p]:
            print(f"census, {protocol} ({urls[protocol]}), workers={args.workers}:", flush=True)
            report["census"][protocol] = measure_census(urls[protocol], timer, args.workers, series, instances)
        report["pull"] = {}
        for protocol in [p for p in args.pull_protocols.split(",") if p]:
            n = args.dimse_pull_series if protocol == "dimse" and args.dimse_pull_series else args.pull_series
            n = min(n or series, series)
            census = pull_census(urls[protocol], work, n)
            print(f"pull, {protocol}: 1 instance of each of {n} series, de-identified:", flush=True)
            rows = measure_pull(urls[protocol], timer, work, [args.workers, 1], n, census)
            report["pull"][protocol] = {"series": n, "rows": rows}
        if args.latency_ms:
            proxies = [DelayProxy(pacs.http_port, args.latency_ms / 1e3), DelayProxy(pacs.dicom_port, args.latency_ms / 1e3)]
            remote = {"dicomweb": f"http://127.0.0.1:{proxies[0].port}/dicom-web",
                      "dimse": f"dimse://{pacs.aet}@127.0.0.1:{proxies[1].port}"}
            try:
                for protocol in [p for p in args.pull_protocols.split(",") if p]:
                    n = args.dimse_pull_series if protocol == "dimse" and args.dimse_pull_series else args.pull_series
                    n = min(n or series, series)
                    census = pull_census(remote[protocol], work, n)
                    print(f"pull, {protocol}, {2 * args.latency_ms:g} ms round trip: 1 instance of each of {n} "
                          "series, de-identified:", flush=True)
                    rows = measure_pull(remote[protocol], timer, work, [args.workers, 1], n, census)
                    report["pull"][f"{protocol}, {2 * args.latency_ms:g} ms RTT"] = {"series": n, "rows": rows}
            finally:
                for proxy in proxies:
                    proxy.close()
        report["steps"] = {}
        if args.steps:
            for protocol in [p for p in args.pull_protocols.split(",") if p]:
                report["steps"][protocol] = retrieval_steps(urls[protocol], args.steps)
    finally:
        pacs.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_report(args, report, load_before)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))


def print_report(args: argparse.Namespace, report: dict[str, Any], load_before: float) -> None:
    """The tables and ratios (the ratios are also added to `report`)."""
    import pydicom

    series, instances, state = report["series"], report["instances"], report["archive"]
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs shared by this process and "
          f"Orthanc, Python {platform.python_version()}, pydicom {pydicom.__version__}; best of {args.repeats}; "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other processes)")
    print(f"Orthanc: DicomThreadsCount {args.orthanc_dicom_threads or 'default (4)'}, DCMTK Nagle "
          f"{'on (as packaged)' if args.as_packaged else 'off (TCP_NODELAY=1)'}, HttpThreadsCount {args.http_threads}")
    print(f"archive: {series} series x {args.per_series} instances = {instances}; written in "
          f"{state['write_s']:.1f} s, uploaded in {state['upload_s']:.1f} s "
          f"({instances / state['upload_s']:.0f} instances/s)")
    if report["census"]:
        print(f"\n{'census':28s} {'seconds':>8s} {'series/s':>9s} {'queries':>8s} {'our CPU':>7s} {'Orthanc CPU':>11s}")
    for protocol, rows in report["census"].items():
        for level, row in rows.items():
            name = f"{protocol}, {level} level"
            print(f"{name:28s} {row['seconds']:8.2f} {series / row['seconds']:9.1f} {row['outcome']['queries']:8d} "
                  f"{row['our_cpu_s']:7.1f} {row['orthanc_cpu_s']:11.1f}{_incomplete(row)}")
        ratio = rows["instance"]["seconds"] / rows["series"]["seconds"]
        rows["ratio"] = ratio
        print(f"{'':28s} series level {ratio:.1f}x faster than the instance crawl (target >= 10x)")
    if report["pull"]:
        print(f"\n{'pull (1 instance per series)':28s} {'seconds':>8s} {'inst/s':>9s} {'series':>8s} {'our CPU':>7s} "
              f"{'Orthanc CPU':>11s}")
    for protocol, entry in report["pull"].items():
        for w, row in entry["rows"].items():
            name = f"{protocol}, workers={w}"
            print(f"{name:28s} {row['seconds']:8.2f} {entry['series'] / row['seconds']:9.1f} {entry['series']:8d} "
                  f"{row['our_cpu_s']:7.1f} {row['orthanc_cpu_s']:11.1f}{_incomplete(row)}")
        ratio = entry["rows"][1]["seconds"] / entry["rows"][args.workers]["seconds"]
        entry["ratio"] = ratio
        print(f"{'':28s} workers={args.workers} {ratio:.2f}x faster than one at a time (target >= 3x)")
    if report["steps"]:
        print("\none instance at a time, median ms per instance:")
        for protocol, steps in report["steps"].items():
            print(f"  {protocol:9s} " + ", ".join(f"{name} {ms:.1f}" for name, ms in steps.items()))


if __name__ == "__main__":
    sys.exit(main())

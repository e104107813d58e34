"""Index throughput and memory (issue 2, "Measured").

    python benchmarks/bench_index.py [--export DIR] [--files 10000] [--image-size 256] [--workers 1,2]
    python benchmarks/bench_index.py --memory 100000 [--workers 2]

Throughput mode builds (or reuses, --export DIR) a synthetic export of about --files files at a
realistic image size, reads every file once to warm the page cache, then measures in the same run:
our header reader in one process, `build_index` with each worker count (fresh index each time),
and the naive baseline `pydicom.dcmread(path)` (the whole file, pixel data included) over the same
files. Prints files/s, files/s per worker, microseconds per file, and the ratios (targets: >= 5x
naive, >= 1,000 files/s per worker, near-linear scaling); the row overhead (what build_index with
1 worker costs beyond read_header: the walk, labels, pseudonyms, Arrow, Parquet); and the load
average, since other processes share the machine (best of --repeats is kept).

Memory mode makes a tree of N files by hard-linking a small synthetic export many times (cheap:
no new data), indexes it in a fresh child process, and reports the peak resident memory of that
process and of its workers (getrusage; target: below 1 GB for 100,000 files).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _files(root: Path) -> list[Path]:
    from modan_dicom.ingest.walk import walk

    return [root / e.path for e in walk(root)]


def _warm(paths: list[Path]) -> int:
    total = 0
    for p in paths:
        with open(p, "rb") as handle:
            while chunk := handle.read(1 << 20):
                total += len(chunk)
    return total


def drop_page_cache() -> None:
    """Empty the kernel's page cache (Linux, root): the next reads come from the disk, as on a real export."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as handle:
        handle.write("3\n")


COLD = False  # set by --cold: every timed run starts from an empty page cache
CLOCK = time.perf_counter  # --cpu-time: time.process_time, this process's CPU (steadier on a busy machine)
WARM_UP = None  # set by throughput(): reads the whole export again (the page cache, warm)


def _time(fn, repeats: int) -> float:
    """Best wall time of `repeats` calls (seconds): the least disturbed by other processes.

    Before each call the page cache is emptied (--cold) or filled with the whole export: this
    machine's kernel pages out what has not been touched for a minute (DAMON), so without it a
    "warm" run could find part of the export gone."""
    best = float("inf")
    for _ in range(repeats):
        if COLD:
            drop_page_cache()
        elif WARM_UP is not None:
            WARM_UP()
        start = CLOCK()
        fn()
        best = min(best, CLOCK() - start)
    return best


def _split_reads(paths: list[Path], processes: int) -> None:
    """read_header over `paths` split into `processes` contiguous parts, each in a process forked
    inside the timing (the paths inherited, nothing sent, nothing returned): perfectly parallel
    work with no coordination, so its scaling is what this machine's cores give this kind of work."""
    from modan_dicom.ingest.header import read_header

    size = -(-len(paths) // processes)
    children = []
    for start in range(0, len(paths), size):
        pid = os.fork()
        if pid == 0:
            try:
                for p in paths[start:start + size]:
                    read_header(p)
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)


def make_export(path: Path, files: int, image_size: int) -> Path:
    from modan_dicom.synth import patients_for_files, synth_export

    print(f"writing a synthetic export of about {files} files at image size {image_size} into {path} ...",
          flush=True)
    start = time.perf_counter()
    synth_export(path, seed=0, n_patients=patients_for_files(files), image_size=image_size)
    print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    return path


def throughput(args: argparse.Namespace) -> None:
    import pydicom

    from modan_dicom.ingest import run_index
    from modan_dicom.ingest.header import read_header

    root = Path(args.export) if args.export else Path(tempfile.mkdtemp(prefix="bench-index-")) / "export"
    if not (root / "manifest.csv").exists():
        make_export(root, args.files, args.image_size)
    global WARM_UP
    paths = _files(root)
    size = _warm(paths)
    WARM_UP = lambda: (_files(root), _warm(paths))  # noqa: E731
    load_before = os.getloadavg()[0]
    n = len(paths)
    cache = "emptied before every timed run (--cold)" if COLD else "warm"
    print(f"{n} files, {size / 1e9:.2f} GB, mean {size / n / 1e3:.0f} kB (page cache {cache})", flush=True)

    def ours() -> None:
        for p in paths:
            read_header(p)

    def naive() -> None:
        for p in paths:
            try:
                pydicom.dcmread(p)
            except Exception:  # noqa: BLE001 - junk and truncated files fail; the time still counts
                pass

    rows = []
    t = _time(ours, args.repeats)
    rows.append(("read_header, 1 process", 1, t))
    for w in [int(w) for w in args.workers.split(",")]:
        if w > 1:  # the machine's own ceiling: the same reads split over w processes, nothing shared
            rows.append((f"read_header, {w} processes", w, _time(lambda w=w: _split_reads(paths, w), args.repeats)))
    out_dir = Path(tempfile.mkdtemp(prefix="bench-index-out-"))
    workers = [int(w) for w in args.workers.split(",")]
    for w in workers:
        def run(w: int = w) -> None:
            out = out_dir / f"index-{w}.parquet"
            out.unlink(missing_ok=True)  # a fresh run, not an incremental one
            run_index(root, out, workers=w, salt="bench", return_frame=False)
        rows.append((f"build_index, workers={w}", w, _time(run, args.repeats)))
    t_naive = _time(naive, max(1, args.repeats - 1))
    rows.append(("pydicom.dcmread(path), 1 process", 1, t_naive))
    shutil.rmtree(out_dir, ignore_errors=True)

    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"pydicom {pydicom.__version__}; best of {args.repeats}; load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after (other processes)")
    print(f"{'':36s} {'seconds':>8s} {'files/s':>9s} {'per process':>11s} {'us/file':>8s} {'vs naive':>9s}")
    for name, w, t in rows:
        print(f"{name:36s} {t:8.2f} {n / t:9.0f} {n / t / w:11.0f} {t / n * 1e6:8.1f} {t_naive / t:8.1f}x")
    by_workers = {w: t for name, w, t in rows if name.startswith("build_index")}
    if 1 in by_workers:
        if not COLD:  # cold, build_index reads ahead (prefetch) and read_header alone does not
            print(f"row overhead (build_index, 1 worker, minus read_header): "
                  f"{(by_workers[1] - rows[0][2]) / n * 1e6:.1f} us/file")
        ceiling = {w: t for name, w, t in rows if name.startswith("read_header")}
        for w, t in by_workers.items():
            if w > 1:
                scaling, machine = by_workers[1] / t, ceiling[1] / ceiling[w]
                print(f"scaling 1 -> {w} workers: {scaling:.2f}x (linear: {w}x); the same header reads split over "
                      f"{w} independent processes: {machine:.2f}x (this machine's ceiling); parallel efficiency "
                      f"against it {scaling / machine:.0%}")
    if args.json:
        Path(args.json).write_text(json.dumps({"files": n, "bytes": size, "rows": rows, "cold": COLD,
                                               "load": [load_before, os.getloadavg()[0]]}, indent=1))


def _link_tree(small: Path, target: Path, n: int) -> int:
    """`n` files under `target` (1,000 per folder), hard links to the files of `small`."""
    sources = [p for p in _files(small) if p.name not in ("manifest.csv", "phi.json")]
    target.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        folder = target / f"d{i // 1000:04d}"
        if i % 1000 == 0:
            folder.mkdir(exist_ok=True)
        src = sources[i % len(sources)]
        dst = folder / f"{i:07d}-{src.name}"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    return n


def memory(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-index-mem-"))
    try:
        small = make_export(work / "small", 300, args.image_size)
        start = time.perf_counter()
        _link_tree(small, work / "tree", args.memory)
        print(f"linked {args.memory} files in {time.perf_counter() - start:.0f} s", flush=True)
        workers = [int(w) for w in args.workers.split(",")]
        for w in workers:
            cmd = [sys.executable, __file__, "--_child", str(work / "tree"), str(work / f"index-{w}.parquet"), str(w)]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            report = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"workers={w}: {report['files']} files in {report['seconds']:.0f} s "
                  f"({report['files'] / report['seconds']:.0f} files/s); peak RSS main {report['self_mb']:.0f} MB, "
                  f"largest worker process {report['children_mb']:.0f} MB, total bound (this process reads "
                  f"too, {w - 1} worker processes) {report['self_mb'] + (w - 1) * report['children_mb']:.0f} MB; "
                  f"index {report['index_mb']:.2f} MB", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _child(source: str, output: str, workers: int) -> None:
    from modan_dicom.ingest import run_index

    result = run_index(source, output, workers=workers, salt="bench", return_frame=False)
    to_mb = 1 / 1024  # ru_maxrss is in kB on Linux
    print(json.dumps({
        "files": result.files, "seconds": result.seconds,
        "self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * to_mb,
        "children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * to_mb,
        "index_mb": Path(output).stat().st_size / 1e6,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", help="An existing synthetic export (written there when missing).")
    parser.add_argument("--files", type=int, default=10_000, help="About how many files to synthesise.")
    parser.add_argument("--image-size", type=int, default=256, help="synth_export image_size (pixels).")
    parser.add_argument("--workers", default="1,2", help="Comma list of worker counts.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per measurement (best kept).")
    parser.add_argument("--memory", type=int, default=0, help="Memory mode: index this many (linked) files.")
    parser.add_argument("--json", help="Also write the throughput numbers to this file.")
    parser.add_argument("--cold", action="store_true",
                        help="Empty the page cache before every timed run (Linux, root): disk-bound, like a real export.")
    parser.add_argument("--cpu-time", action="store_true",
                        help="Time this process's CPU, not the wall clock (with --workers 1: workers and the "
                             "forked header reads are not counted): to compare two versions on a busy machine.")
    parser.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        _child(args._child[0], args._child[1], int(args._child[2]))
    elif args.memory:
        memory(args)
    else:
        global COLD, CLOCK
        COLD = args.cold
        CLOCK = time.process_time if args.cpu_time else time.perf_counter
        throughput(args)


if __name__ == "__main__":
    main()

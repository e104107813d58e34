"""Run the index's chunks in this process and in worker processes, results in walk order.

`ChunkRunner(make_reader, workers)` takes the chunks of a walk (lists of files to read, with
whatever the caller attaches) and yields each chunk's result in the walk's order, with bounded
memory. A reader is what `make_reader()` returns: an object with `batch(items, prefetch=True)` (read
the files; prefetch=False when `prefetch(items)` was called ahead), `prefetch(items)` and
`warm_up()`.

- workers=1: everything here, one chunk ahead: the next chunk's files are asked of a cold disk
  (`prefetch`) before this one is read.
- workers=N>1: this process and N-1 worker processes share the chunks, so N workers are N
  processes, as many cores: a pool of N beside a main process that walks and writes would have
  them compete for the cores with it. Each worker is connected by one pipe: chunks go one way,
  results (Arrow record batches, pickled as Arrow buffers) the other. Up to two chunks wait per
  worker; results are taken as soon as they are ready, and whenever the workers have enough, this
  process reads the next chunk itself. This process has no helper threads, so nothing takes the
  interpreter from its own reading (a worker sends its results from a second thread). Workers are
  forked on Linux after `warm_up()`: they start in milliseconds with the modules, the vocabulary
  and its compiled matcher inherited.
"""

from __future__ import annotations

import gc
import multiprocessing
import queue
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

QUEUED = 2  # chunks waiting per worker, at most


class Reader(Protocol):
    def batch(self, items: Any, prefetch: bool = True) -> Any: ...
    def prefetch(self, items: Any) -> None: ...
    def warm_up(self) -> None: ...


class WorkerFailed(RuntimeError):
    """A worker process raised (the message carries its traceback) or died."""


def _work(make_reader: Callable[[], Reader], conn: Connection) -> None:
    """A worker process: read chunks from `conn` until None, send back each result (or the error).

    Results are sent by a second thread: a result is larger than the pipe's buffer, so sending
    waits until the main process reads it, and meanwhile this process reads its next chunk.
    """
    results: queue.Queue[Any] = queue.Queue(maxsize=QUEUED)

    def send() -> None:
        try:
            while (result := results.get()) is not None:
                conn.send(result)
        except (OSError, EOFError):
            pass  # the main process went away

    sender = threading.Thread(target=send, name="modan-index-send", daemon=True)
    sender.start()
    try:
        reader: Reader | None = None
        while (items := conn.recv()) is not None:
            try:
                if reader is None:
                    reader = make_reader()  # here, so that its failure reaches the main process too
                results.put(reader.batch(items))
            except Exception as exc:  # noqa: BLE001 - the main process re-raises it
                results.put(WorkerFailed(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
                break
    except (EOFError, OSError, KeyboardInterrupt):
        pass  # the main process went away or stopped us
    finally:
        results.put(None)
        sender.join()
        conn.close()


def _context() -> Any:
    """Fork on Linux (cheap, and the workers inherit what `warm_up` paid for); else the default."""
    return multiprocessing.get_context("fork") if sys.platform.startswith("linux") else multiprocessing.get_context()


class ChunkRunner:
    """See the module docstring. Use as a context manager (the workers are stopped on exit)."""

    def __init__(self, make_reader: Callable[[], Reader], workers: int, local: Reader | None = None) -> None:
        self.workers = workers
        self.local = local if local is not None else make_reader()
        self._procs: list[Any] = []
        self._conns: list[Connection] = []
        self._waiting: list[int] = []  # chunks sent to each worker and not yet received
        if workers > 1:
            self.local.warm_up()  # before the fork: the workers inherit what it paid for
            gc.freeze()  # the workers' collections then leave the inherited objects (and pages) alone
            try:
                ctx = _context()
                for _ in range(workers - 1):
                    mine, theirs = ctx.Pipe(duplex=True)
                    proc = ctx.Process(target=_work, args=(make_reader, theirs), daemon=True,
                                       name="modan-index-worker")
                    proc.start()
                    theirs.close()
                    self._procs.append(proc)
                    self._conns.append(mine)
                    self._waiting.append(0)
            finally:
                gc.unfreeze()

    def __enter__(self) -> ChunkRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def map(self, chunks: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, Any, int]]:
        """For each (tag, items) of `chunks`, in order: (tag, result or None when `items` is
        empty, len(items))."""
        if not self._conns:
            yield from self._map_here(chunks)
        else:
            yield from self._map_shared(chunks)

    def _map_here(self, chunks: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, Any, int]]:
        local, ahead = self.local, None
        for tag, items in chunks:
            if items:
                local.prefetch(items)
            if ahead is not None:
                yield ahead[0], (local.batch(ahead[1], prefetch=False) if ahead[1] else None), len(ahead[1])
            ahead = (tag, items)
        if ahead is not None:
            yield ahead[0], (local.batch(ahead[1], prefetch=False) if ahead[1] else None), len(ahead[1])

    def _map_shared(self, chunks: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, Any, int]]:
        conns, waiting = self._conns, self._waiting
        # in walk order: [tag, result, files, worker index or None when the result is there]
        pending: deque[list[Any]] = deque()
        sent: list[deque[list[Any]]] = [deque() for _ in conns]  # each worker's chunks, in order
        held = 4 * self.workers  # chunks read but not handed back yet, at most

        def receive(k: int) -> None:
            """Take worker k's next result (waiting for it) and put it in its pending entry."""
            entry = sent[k].popleft()
            entry[1], entry[3] = self._receive(k), None
            waiting[k] -= 1

        def top_up() -> tuple[Any, Any] | None:
            """Take the results that are ready, send chunks to the workers while they have room;
            return the first chunk that found none (to read here), or None when the walk is over."""
            for k, conn in enumerate(conns):
                while waiting[k] and conn.poll():
                    receive(k)
            for tag, items in chunks:
                if not items:
                    pending.append([tag, None, 0, None])
                    continue
                k = min(range(len(conns)), key=waiting.__getitem__)
                if waiting[k] >= QUEUED:
                    return tag, items
                conns[k].send(items)
                waiting[k] += 1
                entry = [tag, None, len(items), k]
                pending.append(entry)
                sent[k].append(entry)
            return None

        def ready(drain: bool = False) -> Iterator[tuple[Any, Any, int]]:
            """Hand back the chunks at the head that are done; wait for the head when too many are
            held, or for all of them (`drain`: the walk is over)."""
            while pending:
                k = pending[0][3]
                if k is not None:
                    if not drain and len(pending) <= held and not conns[k].poll():
                        return
                    receive(k)  # the head is worker k's earliest chunk
                tag, result, n, _ = pending.popleft()
                yield tag, result, n

        while (chunk := top_up()) is not None:
            pending.append([chunk[0], self.local.batch(chunk[1]), len(chunk[1]), None])
            yield from ready()
        yield from ready(drain=True)

    def _receive(self, k: int) -> Any:
        conn, proc = self._conns[k], self._procs[k]
        try:
            wait([conn, proc.sentinel])
            result = conn.recv()
        except (EOFError, OSError) as exc:
            raise WorkerFailed(f"an index worker process died (exit code {proc.exitcode})") from exc
        if isinstance(result, WorkerFailed):
            raise result
        return result

    def close(self) -> None:
        """Stop the workers (at once when chunks are still with them: after an error or a kill)."""
        for conn, proc, waiting in zip(self._conns, self._procs, self._waiting):
            if waiting:
                proc.terminate()
                continue
            try:
                conn.send(None)
            except OSError:
                pass
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        for conn in self._conns:
            conn.close()
        self._procs, self._conns, self._waiting = [], [], []

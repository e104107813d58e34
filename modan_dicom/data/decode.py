"""Decode images in worker processes, so that a hostile file costs one image and never the run.

Some decoders do not raise on damaged pixel data, they take their process down or never return:

- pylibjpeg-rle panics on an RLE segment whose runs overflow the frame; pyo3's `PanicException`
  derives from `BaseException`, so `except Exception` (pydicom's, MONAI's, a thread pool's) misses
  it. In MONAI's `CacheDataset` it killed a pool thread and the main thread waited forever.
- pydicom's GDCM plugin aborts the process (SIGABRT, an uncaught C++ exception) on a damaged
  JPEG 2000 codestream; SimpleITK (GDCM) dies of SIGFPE on an RLE frame whose header lists no
  segment.
- Reading a FIFO, or a file on a hung network mount, blocks forever.

`IsolatedDecoder` keeps `workers` processes, each decoding one image at a time (`LoadResized`:
path -> (1, S, S) uint8), so that whatever happens is known to belong to that image. An exception
of any kind in the worker, a worker that dies, or one that takes longer than `timeout_s` becomes a
`DecodeFailure` with a short reason (no path, no UID); a dead or stuck worker is replaced. Callers
may call it from several threads at once: each call waits for an idle worker.

On Linux the workers are forked (in milliseconds, with the decoding modules already imported; they
never touch CUDA and use one thread); they are started when the decoder is made, from the calling
thread, and a dead one is replaced by a fork under a lock, so that no worker holds another's pipe.
Overhead, measured on 2 vCPUs: see docs/architecture.md ("Training data").
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import queue
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import torch

DECODE_TIMEOUT_S = 120.0  # one image; the largest legitimate images decode in seconds
_REASON_LIMIT = 200
# UIDs other than the standard's own (transfer syntaxes, SOP classes) may identify a patient's image
_UID = re.compile(r"(?<![\d.])(?!1\.2\.840\.10008\.)\d+(?:\.\d+){3,}(?!\d)")
_ALWAYS_RAISE = (KeyboardInterrupt, SystemExit, GeneratorExit)


class DecodeFailure(Exception):
    """One image could not be decoded; `reason` is one short line without identifiers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def describe(exc: BaseException, path: str | os.PathLike[str]) -> str:
    """A short reason for `exc` raised while decoding `path`: its message without the path or UIDs.

    Messages of `modan_dicom.errors.ModanError` are kept as they are (less the path); others get
    their type's name in front ("PanicException: index out of bounds: ...").
    """
    from ..errors import ModanError

    text = " ".join(str(exc).split())
    text = scrub(text, path)
    if not isinstance(exc, ModanError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text[:_REASON_LIMIT]


def failure_reason(exc: BaseException, path: str | os.PathLike[str]) -> str:
    """The reason behind `exc`: a `DecodeFailure`'s own, also when wrapped (MONAI re-raises in a RuntimeError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DecodeFailure):
            return seen.reason
        seen = seen.__cause__ or seen.__context__
    return describe(exc, path)


def scrub(text: str, path: str | os.PathLike[str]) -> str:
    """`text` without the path, any of its trailing parts (folders may be named after patients), or UIDs."""
    parts = Path(path).parts
    tails = ["/".join(parts[i:]).replace("//", "/") for i in range(len(parts))]
    for tail in sorted({str(path), *tails}, key=len, reverse=True):
        if len(tail) >= 3:
            text = text.replace(tail, "<file>")
    text = _UID.sub("<uid>", text)
    while text.startswith("<file>"):
        text = text[len("<file>"):].lstrip(":; ")
    return text


def _context() -> multiprocessing.context.BaseContext:
    """fork on Linux (a worker starts in milliseconds, and no main module is imported again); spawn elsewhere."""
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def _serve(conn: Connection, image_size: int) -> None:
    """A worker: decode the paths that arrive on `conn` until None; send (True, array) or (False, reason)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    faulthandler.disable()  # a crash here is an answer (the image's reason), not a report for the user
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # decoders print (Rust panics, GDCM warnings); library code never does
    os.dup2(devnull, 2)
    torch.set_num_threads(1)
    from .transforms import LoadResized

    load = LoadResized(image_size)
    while True:
        try:
            path = conn.recv()
        except (EOFError, OSError):
            return
        if path is None:
            return
        try:
            reply: tuple[bool, Any] = (True, load(path).numpy())
        except BaseException as exc:  # noqa: BLE001 - panics included; SIGINT is ignored here
            reply = (False, describe(exc, path))
        conn.send(reply)


class _Worker:
    def __init__(self, context: multiprocessing.context.BaseContext, image_size: int) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, image_size), daemon=True, name="modan-decode")
        self.process.start()
        child.close()

    def stop(self, kill: bool = False) -> None:
        if not kill:
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                kill = True
            self.process.join(2.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5.0)
        self.conn.close()


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the decoder crashed ({name})"
    return f"the decoder process exited (status {exitcode})"


class IsolatedDecoder:
    """Path -> (1, S, S) uint8 tensor, decoded in one of `workers` processes; raises `DecodeFailure`.

    Use as a context manager (or call `close`): the workers start here and stop at the end.
    Thread-safe: up to `workers` calls run at once.
    """

    def __init__(self, image_size: int, workers: int = 2, timeout_s: float = DECODE_TIMEOUT_S) -> None:
        self.image_size = int(image_size)
        self.workers = max(1, int(workers))
        self.timeout_s = float(timeout_s)
        self._idle: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()
        self._workers: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(self.workers):
            self._idle.put(self._start())

    def __enter__(self) -> IsolatedDecoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise DecodeFailure("decoding was stopped")
            worker = _Worker(_context(), self.image_size)
            self._workers.add(worker)
            return worker

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._workers.discard(worker)
        worker.stop(kill=True)

    def __call__(self, path: str | os.PathLike[str]) -> torch.Tensor:
        worker = self._idle.get()
        try:
            if worker is None or not worker.process.is_alive():
                if worker is not None:
                    self._discard(worker)
                worker = None
                worker = self._start()
            ok, value = self._ask(worker, str(path))
        except DecodeFailure:
            if worker is not None and not worker.process.is_alive():
                self._discard(worker)
                worker = None
            raise
        finally:
            self._idle.put(worker)
        if not ok:
            raise DecodeFailure(value)
        return torch.from_numpy(np.asarray(value))

    def _ask(self, worker: _Worker, path: str) -> tuple[bool, Any]:
        try:
            worker.conn.send(path)
            if not worker.conn.poll(self.timeout_s):
                worker.process.kill()
                worker.process.join(5.0)
                raise DecodeFailure(f"decoding took longer than {self.timeout_s:g} s")
            return worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(5.0)
            if self._closed:
                raise DecodeFailure("decoding was stopped") from None
            raise DecodeFailure(_exit_reason(worker.process.exitcode)) from None

    def map(
        self,
        get: Callable[[int], torch.Tensor],
        paths: Sequence[str],
        progress: Callable[[int, int | None], None] | None = None,
    ) -> Iterator[tuple[int, torch.Tensor | str]]:
        """`get(i)` for every i of `paths` from as many threads as workers: (i, image) or (i, reason), in order.

        `get` decodes image i through this decoder (directly or through a MONAI dataset); a failure of
        any kind (except KeyboardInterrupt, SystemExit, GeneratorExit) costs that image only. `paths`
        are the files, for scrubbing them from reasons. progress: (images done, total).
        """

        def one(i: int) -> torch.Tensor | str:
            try:
                return get(i)
            except BaseException as exc:  # noqa: BLE001 - a failure of any kind costs this image only
                if isinstance(exc, _ALWAYS_RAISE):
                    raise
                return failure_reason(exc, paths[i])

        n, finished = len(paths), False
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="modan-decode")
        try:
            for i, result in enumerate(pool.map(one, range(n))):
                yield i, result
                if progress is not None:
                    progress(i + 1, n)
            finished = True
        finally:
            if not finished:
                self.close(kill=True)  # first, so that no thread is left waiting on a worker (Ctrl-C included)
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self, kill: bool = False) -> None:
        """Stop every worker, politely or (`kill`) at once; a call still waiting gets `DecodeFailure`."""
        with self._lock:
            self._closed = True
            workers, self._workers = list(self._workers), set()
        for worker in workers:
            worker.stop(kill=kill)


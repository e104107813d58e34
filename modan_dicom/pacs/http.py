"""Bounded HTTP GETs for the DICOMweb client: a total deadline, a size cap, redirects only where allowed.

`BoundedHttp.get(url, params, accept, max_bytes)` returns (status, headers, body) of one GET, or raises:

- `Deadline`: the request took more than `Limits.deadline_s` in all. A watchdog shuts the connection's
  socket down when the deadline passes, whatever the request is waiting for (the connection, the status
  line, headers trickled a byte at a time, the body), so the deadline holds to within a fraction of a second;
- `TooLarge`: the body is longer than `max_bytes` (it is read in pieces and dropped at the cap: an endless
  answer costs at most `max_bytes` of memory);
- `Refused`: a redirect loop (more than `Limits.max_redirects`), a redirect to another host (unless
  `Limits.redirects_off_host`; the credentials are never sent there), or from https to http;
- `requests` exceptions for HTTP errors (`requests.HTTPError`), dropped connections and socket timeouts.

Messages name the server and the failure, never a URL path or a query (those carry UIDs).
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from .archive import Limits

REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_current = threading.local()  # the _Watch of the request this thread is making


class Deadline(Exception):
    """A request ran past its total deadline."""


class TooLarge(Exception):
    """An answer is larger than its cap."""


class Refused(Exception):
    """A redirect that is not followed (the message says why)."""


class _Watch:
    """Shuts the socket of the current request down at its deadline, and again every quarter of a second
    after it (a connection still being opened at the deadline has no socket yet), until cancelled."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self.cancelled = False
        self.connection: Any = None
        self._lock = threading.Lock()
        _WATCHDOG.add(self, time.monotonic() + seconds)

    def attach(self, connection: Any) -> None:
        with self._lock:
            self.connection = connection
            if self.expired:
                _shut(connection)

    def fire(self) -> bool:
        """Shut the connection down (the deadline has passed); False once cancelled."""
        with self._lock:
            if self.cancelled:
                return False
            self.expired = True
            _shut(self.connection)
            return True

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True


class _Watchdog:
    """One daemon thread that fires the watches whose deadlines have passed (a heap of deadlines)."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._due: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, watch: _Watch, when: float) -> None:
        with self._wake:
            heapq.heappush(self._due, (when, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="modan-http-watchdog", daemon=True)
                self._thread.start()
            if self._due[0][2] is watch:
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._due and self._due[0][2].cancelled:
                    heapq.heappop(self._due)
                if not self._due:
                    self._wake.wait()
                    continue
                when = self._due[0][0]
                now = time.monotonic()
                if when > now:
                    self._wake.wait(when - now)
                    continue
                _, _, watch = heapq.heappop(self._due)
            if watch.fire():
                self.add(watch, time.monotonic() + 0.25)


_WATCHDOG = _Watchdog()


def _shut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv(); close() would not
        except OSError:
            pass


def _watched_pools() -> dict[str, type]:
    """urllib3 pool classes that hand each connection they lend to the current request's watch."""
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def lend(pool_class: type) -> type:
        class Watched(pool_class):  # type: ignore[misc, valid-type]
            def _get_conn(self, timeout: float | None = None) -> Any:
                connection = super()._get_conn(timeout)
                watch = getattr(_current, "watch", None)
                if watch is not None:
                    watch.attach(connection)
                return connection

        Watched.__name__ = "Watched" + pool_class.__name__
        return Watched

    return {"http": lend(HTTPConnectionPool), "https": lend(HTTPSConnectionPool)}


def _adapter_class() -> type:
    from requests.adapters import HTTPAdapter

    pools = _watched_pools()

    class WatchedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)
            manager.pool_classes_by_scheme = pools
            return manager

    return WatchedAdapter


_ADAPTER: list[type] = []


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


class BoundedHttp:
    """GETs within `limits`, one `requests` session per thread (thread-safe).

    root: the archive's URL (its scheme, host and port are "the archive's host"); headers: sent with every
    request to that host (credentials), never to another; ca_bundle: PEM file for https; timeout_s: the
    longest wait for the connection or for any one read.
    """

    def __init__(self, root: str, *, headers: Mapping[str, str], ca_bundle: str | None, timeout_s: float,
                 limits: Limits) -> None:
        self.origin = _origin(root)
        self.headers = dict(headers)
        self.ca_bundle = ca_bundle
        self.timeout_s = timeout_s
        self.limits = limits
        self._local = threading.local()

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            import requests

            if not _ADAPTER:
                _ADAPTER.append(_adapter_class())
            session = requests.Session()
            adapter = _ADAPTER[0]()
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            if self.ca_bundle:
                session.verify = self.ca_bundle
            self._local.session = session
        return session

    def close(self) -> None:
        """Close this thread's connections (idempotent)."""
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None

    def get(self, url: str, params: Mapping[str, Any] | None, accept: str,
            max_bytes: int) -> tuple[int, Mapping[str, str], bytes]:
        """(status, headers, body) of a GET of `url` (redirects followed as allowed); see the module docstring."""
        watch = _Watch(self.limits.deadline_s)
        _current.watch = watch
        try:
            return self._get(url, params, accept, max_bytes, watch)
        except (Deadline, TooLarge, Refused):
            raise
        except Exception:
            if watch.expired:
                self.close()  # the socket was shut down under a response
                raise Deadline from None
            raise
        finally:
            watch.cancel()
            _current.watch = None

    def _get(self, url: str, params: Mapping[str, Any] | None, accept: str, max_bytes: int,
             watch: _Watch) -> tuple[int, Mapping[str, str], bytes]:
        session = self._session()
        for _ in range(self.limits.max_redirects + 1):
            here = _origin(url)
            headers = {"Accept": accept, **(self.headers if here == self.origin else {})}
            timeout = (min(self.timeout_s, self.limits.deadline_s), self.timeout_s)
            response = session.get(url, params=params, headers=headers, timeout=timeout, stream=True,
                                   allow_redirects=False)
            try:
                location = response.headers.get("Location")
                if response.status_code in REDIRECTS and location:
                    url, params = self._follow(url, location), None
                    continue
                response.raise_for_status()
                body = _read(response, max_bytes)
                if watch.expired:
                    raise Deadline
                return response.status_code, response.headers, body
            finally:
                response.close()
        raise Refused(f"more than {self.limits.max_redirects} redirects (a redirect loop?)")

    def _follow(self, url: str, location: str) -> str:
        target = urljoin(url, location)
        scheme, host, port = _origin(target)
        if scheme not in ("http", "https"):
            raise Refused("a redirect to something that is not http(s); not followed")
        if self.origin[0] == "https" and scheme == "http":
            raise Refused("a redirect from https to plain http; not followed")
        if (scheme, host, port) != self.origin and not self.limits.redirects_off_host:
            raise Refused(f"a redirect to another server ({scheme}://{host}:{port}); not followed "
                          "(redirects_off_host allows it)")
        return target


def _read(response: Any, max_bytes: int) -> bytes:
    """The body of a streamed response, refused past `max_bytes` (decoded bytes: a compressed bomb too)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)

"""A throwaway local Orthanc: the real PACS the tests, examples and benchmarks talk to.

    with LocalOrthanc(tmp_path / "orthanc", limit_find_results=100) as pacs:
        pacs.upload(export_folder)                 # through Orthanc's REST API
        census(pacs.dicomweb_url) ; census(pacs.dimse_url)

It runs Debian's ``orthanc`` (binary ``Orthanc``) with the ``orthanc-dicomweb`` plugin on free loopback ports,
with a configuration and storage in `folder`, and stops it on exit. Only loopback connections are accepted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import PacsError

BINARY_NAMES = ("Orthanc",)
PLUGIN_PATHS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
                "/usr/lib/orthanc/plugins/libOrthancDicomWeb.so")


def find_orthanc() -> tuple[str | None, str | None]:
    """(path of the Orthanc binary, path of the DICOMweb plugin); None where missing."""
    binary = next((found for name in BINARY_NAMES if (found := shutil.which(name)) is not None), None)
    if binary is None and os.path.exists("/usr/sbin/Orthanc"):
        binary = "/usr/sbin/Orthanc"
    plugin = next((p for p in PLUGIN_PATHS if os.path.exists(p)), None)
    return binary, plugin


def orthanc_missing() -> str | None:
    """Why a local Orthanc cannot run here (None when it can)."""
    binary, plugin = find_orthanc()
    if binary is None:
        return "Orthanc is not installed (Debian package `orthanc`)"
    if plugin is None:
        return "the Orthanc DICOMweb plugin is not installed (Debian package `orthanc-dicomweb`)"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalOrthanc:
    """A local Orthanc server (see the module docstring).

    aet: its AE title; limit_find_results / limit_find_instances: Orthanc's caps on the matches of one query
    (0: none); check_called_aet: reject associations to another called AE title; users: {name: password} turns
    HTTP basic authentication on; tcp_nodelay: start it with TCP_NODELAY=1 in its environment, as docs/pacs.md
    advises (its DICOM library, DCMTK, then turns Nagle's algorithm off: no ~40 ms stall per DIMSE exchange);
    dicom_threads: DicomThreadsCount, the associations it serves at once (0: Orthanc's default, 4).
    """

    def __init__(self, folder: str | os.PathLike[str], *, aet: str = "ORTHANC", limit_find_results: int = 0,
                 limit_find_instances: int = 0, check_called_aet: bool = True,
                 users: dict[str, str] | None = None, http_threads: int = 16, tcp_nodelay: bool = True,
                 dicom_threads: int = 0) -> None:
        self.folder = Path(folder)
        self.aet = aet
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.users = dict(users or {})
        self.config: dict[str, Any] = {
            "Name": "modan-dicom test PACS",
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "storage"),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": aet,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": bool(self.users),
            "RegisteredUsers": self.users, "HttpThreadsCount": http_threads,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True, "DicomAlwaysAllowStore": True,
            "DicomCheckCalledAet": check_called_aet,
            "LimitFindResults": limit_find_results, "LimitFindInstances": limit_find_instances,
            "StorageCompression": False, "HttpCompressionEnabled": False,
            "ConcurrentJobs": 2, "SaveJobs": False,
        }
        if dicom_threads:
            self.config["DicomThreadsCount"] = dicom_threads
        self.tcp_nodelay = tcp_nodelay
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.rest_url}/dicom-web"

    @property
    def dimse_url(self) -> str:
        return f"dimse://{self.aet}@127.0.0.1:{self.dicom_port}"

    def _request(self, method: str, path: str, data: bytes | None = None, timeout: float = 30.0) -> Any:
        request = urllib.request.Request(self.rest_url + path, data=data, method=method)
        if self.users:
            import base64

            name, password = next(iter(self.users.items()))
            token = base64.b64encode(f"{name}:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def start(self, timeout_s: float = 60.0) -> LocalOrthanc:
        missing = orthanc_missing()
        if missing:
            raise PacsError(missing)
        binary, plugin = find_orthanc()
        self.config["Plugins"] = [plugin]
        (self.folder / "storage").mkdir(parents=True, exist_ok=True)
        config_path = self.folder / "orthanc.json"
        config_path.write_text(json.dumps(self.config, indent=2))
        log = open(self.folder / "orthanc.log", "wb")  # noqa: SIM115 - kept open for the server's life
        env = {k: v for k, v in os.environ.items() if k != "TCP_NODELAY"}
        if self.tcp_nodelay:
            env["TCP_NODELAY"] = "1"
        self.process = subprocess.Popen([str(binary), str(config_path)], stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.folder, start_new_session=True, env=env)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PacsError(f"Orthanc stopped at start (exit {self.process.returncode}): {self.log_tail()}")
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                self._request("GET", "/system", timeout=2)
                return self
            time.sleep(0.1)
        self.stop()
        raise PacsError(f"Orthanc did not answer within {timeout_s:g} s: {self.log_tail()}")

    def log_tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            return " | ".join((self.folder / "orthanc.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LocalOrthanc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def upload(self, files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], workers: int = 4) -> int:
        """POST every DICOM file (a folder is walked) to /instances; returns how many Orthanc stored.
        Files Orthanc refuses (not DICOM, DICOMDIR) are skipped."""
        if isinstance(files, (str, os.PathLike)) and Path(files).is_dir():
            paths = sorted(p for p in Path(files).rglob("*") if p.is_file())
        else:
            paths = [Path(p) for p in files]  # type: ignore[union-attr]

        def send(path: Path) -> int:
            try:
                self._request("POST", "/instances", path.read_bytes(), timeout=60)
                return 1
            except urllib.error.HTTPError as exc:
                if exc.code in (400, 404, 415):
                    return 0
                raise

        with ThreadPoolExecutor(workers) as pool:
            return sum(pool.map(send, paths))

    def statistics(self) -> dict[str, Any]:
        """Orthanc's /statistics (CountPatients, CountStudies, CountSeries, CountInstances ...)."""
        return self._request("GET", "/statistics")

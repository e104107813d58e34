"""May this output be replaced? The one rule every command that writes follows, checked before any work.

A command replaces only what modan-dicom wrote, recognised by its content, never by its name:

| output | ours when |
| --- | --- |
| index, census (Parquet) | its schema metadata holds the key `modan_dicom` |
| embeddings (Parquet) | its schema metadata holds the key `modan_dicom_embeddings` |
| figure (PNG) | a `Software` text chunk starting with `modan-dicom` (`PNG_METADATA`, given to `savefig`) |
| pretraining run folder | empty, or its `config.json` is a pretraining configuration |
| report / benchmark folder | empty, or its `summary.md` is our report, or its `config.json` a benchmark's |

Anything else raises `OutputError` (one line, exit status 2). Nothing here imports torch, so the CLI can
check before it loads the heavy modules. The folder rule itself is
`modan_dicom.atomic.check_folder` (one home), which `claim_folder` also uses for the folders of synth,
pull and the task replicas, with their own marker files.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

from .atomic import check_folder, prepare_parent
from .errors import OutputError

INDEX_KEY = b"modan_dicom"
EMBEDDINGS_KEY = b"modan_dicom_embeddings"
SOFTWARE = "modan-dicom"
PNG_METADATA = {"Software": SOFTWARE}
REPORT_TITLE = "# Downstream benchmark report"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---- recognisers: True when modan-dicom wrote the file or folder -------------------------------


def has_parquet_key(path: Path, key: bytes) -> bool:
    """True when `path` is a Parquet file whose schema metadata holds `key`."""
    try:
        import pyarrow.parquet as pq

        return key in (pq.read_schema(path).metadata or {})
    except Exception:  # noqa: BLE001 - any unreadable or foreign file is simply not ours
        return False


def is_our_png(path: Path) -> bool:
    """True when `path` is a PNG with a `Software: modan-dicom...` text chunk before its pixels."""
    try:
        with open(path, "rb") as handle:
            if handle.read(8) != _PNG_SIGNATURE:
                return False
            while True:
                head = handle.read(8)
                if len(head) < 8:
                    return False
                length, kind = struct.unpack(">I4s", head)
                if kind in (b"IDAT", b"IEND"):
                    return False
                data = handle.read(length)
                handle.read(4)  # CRC
                if kind == b"tEXt" and data.startswith(b"Software\0" + SOFTWARE.encode()):
                    return True
    except OSError:
        return False


def _json_keys(path: Path) -> set[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return set()
    return set(data) if isinstance(data, dict) else set()


def is_run_folder(folder: Path) -> bool:
    """A pretraining run folder: its config.json holds a pretraining configuration."""
    return {"index", "out", "method", "epochs"} <= _json_keys(folder / "config.json")


def is_report_folder(folder: Path) -> bool:
    """A report folder (our summary.md) or a benchmark results folder (its config.json)."""
    try:
        with open(folder / "summary.md", encoding="utf-8") as handle:
            if handle.readline().rstrip("\n") == REPORT_TITLE:
                return True
    except (OSError, UnicodeDecodeError):
        pass
    return {"tasks", "inits", "modes", "repeats"} <= _json_keys(folder / "config.json")


# ---- checks ----------------------------------------------------------------------------------


def claim_file(output: str | os.PathLike[str], is_ours: Callable[[Path], bool], what: str, example: str) -> Path:
    """The resolved path of a file to write, its folder created; `OutputError` when it is a folder, cannot
    be written, or is a file that `is_ours` does not recognise (`what`: "modan-dicom index"; `example`: a
    file name for the message)."""
    path = Path(output)
    if path.is_dir():
        raise OutputError(f"{output} is a folder; give the file name (e.g. {path / example})")
    if path.exists() and not is_ours(path):
        raise OutputError(f"{output} exists and is not a {what}; refusing to replace it "
                          "(remove it or choose another name)")
    prepare_parent(path)  # raises OutputError when the folder cannot be created or written
    return path.resolve()


def embeddings_output(output: str | os.PathLike[str]) -> Path:
    """Check the `embed` output: new, or an embeddings file we wrote."""
    return claim_file(output, lambda p: has_parquet_key(p, EMBEDDINGS_KEY), "modan-dicom embeddings file",
                      "embeddings.parquet")


def figure_output(output: str | os.PathLike[str]) -> Path:
    """Check a PNG output (`visualize`): new, or a figure we wrote."""
    return claim_file(output, is_our_png, "modan-dicom figure", "umap.png")


def report_folder(folder: str | os.PathLike[str]) -> bool:
    """Check a report folder: missing, empty, a previous report or a benchmark results folder."""
    return check_folder(folder, is_report_folder, "modan-dicom report or benchmark folder")


def run_folder(folder: str | os.PathLike[str]) -> bool:
    """Check a pretraining run folder: missing, empty or a previous run."""
    return check_folder(folder, is_run_folder, "modan-dicom pretraining run")

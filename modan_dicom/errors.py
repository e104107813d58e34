"""The errors a user can cause.

Library code raises these; `modan_dicom.cli` turns any `ModanError` into one line on stderr and exit
status 2 (the traceback only with `--debug`). Anything else escaping the library is a bug.
"""

from __future__ import annotations


class ModanError(Exception):
    """Base class: a problem with the user's input, files, configuration or environment."""


class VocabularyError(ModanError):
    """A vocabulary or profile file is malformed (the message names the file and the entry)."""


class SourceError(ModanError):
    """An input path, file or archive is missing, unreadable or of the wrong shape."""


class OutputError(ModanError):
    """An output location cannot be written."""


class ConfigError(ModanError):
    """Options or a saved configuration are inconsistent."""


class DatasetError(ModanError):
    """A dataset or index holds nothing usable, or does not follow the expected layout."""


class UndecodableError(DatasetError):
    """More images than the allowed share cannot be decoded (the message says where they are listed)."""


class PacsError(ModanError):
    """A PACS / DICOMweb / DIMSE server could not be reached or answered wrongly."""

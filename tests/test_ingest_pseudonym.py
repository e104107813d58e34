"""Keyed pseudonyms and the salt: stable, keyed, stored once with mode 0600."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

import pytest

from modan_dicom.errors import ConfigError
from modan_dicom.ingest.pseudonym import (
    SALT_ENV,
    SALT_FILE,
    Pseudonymizer,
    pseudonym,
    resolve_salt,
    salt_fingerprint,
)


def test_pseudonym_is_the_documented_hmac() -> None:
    expected = hmac.new(b"s3cret", b"patient:PID-1", hashlib.sha256).hexdigest()[:20]
    assert pseudonym(b"s3cret", "patient", "PID-1") == "pat-" + expected


def test_same_salt_same_key_other_salt_other_key() -> None:
    a, b = Pseudonymizer(b"salt-a"), Pseudonymizer(b"salt-b")
    assert a.key("patient", "PID-1") == Pseudonymizer(b"salt-a").key("patient", "PID-1")
    assert a.key("patient", "PID-1") != b.key("patient", "PID-1")
    assert a.key("patient", "PID-1") != a.key("patient", "PID-2")
    # kinds are separate domains: the same string as study and series gives different keys
    assert a.key("study", "1.2.3")[4:] != a.key("series", "1.2.3")[4:]
    assert a.key("patient", None) is None and a.key("patient", "") is None


def test_keep_uids_keeps_uids_but_not_patient_ids() -> None:
    p = Pseudonymizer(b"salt", keep_uids=True)
    keys = p.keys({"PatientID": "PID-1", "StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.3",
                   "SOPInstanceUID": "1.2.3.4"})
    assert keys["study_key"] == "1.2" and keys["series_key"] == "1.2.3" and keys["instance_key"] == "1.2.3.4"
    assert keys["patient_key"].startswith("pat-") and "PID-1" not in keys["patient_key"]


def test_salt_precedence_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SALT_ENV, raising=False)
    assert resolve_salt("given", tmp_path) == (b"given", "argument")
    monkeypatch.setenv(SALT_ENV, "from-env")
    assert resolve_salt(None, tmp_path) == (b"from-env", "environment")
    assert resolve_salt("given", tmp_path)[1] == "argument"
    monkeypatch.delenv(SALT_ENV)
    assert not (tmp_path / SALT_FILE).exists()

    first, source = resolve_salt(None, tmp_path)
    assert source == "new file" and len(first) == 64
    mode = stat.S_IMODE((tmp_path / SALT_FILE).stat().st_mode)
    assert mode == 0o600
    again, source = resolve_salt(None, tmp_path)
    assert (again, source) == (first, "file")

    eph1, source = resolve_salt(None, None)
    assert source == "ephemeral" and eph1 != resolve_salt(None, None)[0]


def test_empty_salt_file_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SALT_ENV, raising=False)
    (tmp_path / SALT_FILE).write_text("")
    with pytest.raises(ConfigError, match="empty"):
        resolve_salt(None, tmp_path)


def test_fingerprint_does_not_reveal_the_salt() -> None:
    fp = salt_fingerprint(b"my-salt")
    assert fp == salt_fingerprint(b"my-salt") and fp != salt_fingerprint(b"other")
    assert "my-salt" not in fp and len(fp) == 12


@pytest.mark.parametrize("keep_uids", [False, True])
def test_key_tuple_equals_keys(keep_uids: bool) -> None:
    p = Pseudonymizer(b"salt", keep_uids=keep_uids)
    cases = [("PID-1", "1.2", "1.2.3", "1.2.3.4"), ("PID-1", "1.2", "1.2.3", "1.2.3.5"),
             (None, "", "1.2.9", None), ("", None, None, "9.9")]
    for _ in range(2):  # the second round is answered from the caches
        for patient, study, series, instance in cases:
            raw = {"PatientID": patient, "StudyInstanceUID": study, "SeriesInstanceUID": series,
                   "SOPInstanceUID": instance}
            expected = p.keys(raw)
            assert p.key_tuple(patient, study, series, instance) == (
                expected["patient_key"], expected["study_key"], expected["series_key"], expected["instance_key"])

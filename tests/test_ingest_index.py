"""build_index / run_index on real DICOM trees: labels, statuses, pseudonyms, PHI, incremental runs,
atomicity, workers, bad input."""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from modan_dicom.errors import ConfigError, OutputError, SourceError
from modan_dicom.ingest import build_index, index_axes, read_index, read_index_meta, run_index, summarize
from modan_dicom.ingest.pseudonym import SALT_ENV, SALT_FILE, pseudonym
from test_ingest_support import (
    FAKE_ADDRESS,
    FAKE_BIRTH_DATE,
    FAKE_PATIENT_NAME,
    ImplicitVRLittleEndian,
    deep_tree,
    make_dataset,
    write_dicom,
    write_sr,
)

SALT = "test-salt"


@pytest.fixture(autouse=True)
def _no_env_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SALT_ENV, raising=False)


def _export(root: Path, n_series: int = 4, per_series: int = 3) -> dict[str, dict]:
    """A small export: series of knee MR (BPE), lumbar spine CT (blank BPE, description), breast
    MR (outside the radimagenet profile), an unlabelled series; plus SR, junk and a truncated file."""
    kinds = [
        dict(modality="MR", body_part="KNEE", series_description="SAG PD FS"),
        dict(modality="CT", body_part="", series_description="AX BONE L SPINE", study_description=""),
        dict(modality="MR", body_part="BREAST", series_description="", study_description=""),
        dict(modality="CT", body_part="", series_description="Series 3", study_description="",
             protocol_name=None),
    ]
    written = {}
    for s in range(n_series):
        kind = kinds[s % len(kinds)]
        study_uid = f"1.2.826.0.1.3680043.10.999.{s // 2}"
        series_uid = f"1.2.826.0.1.3680043.10.999.{s // 2}.{s}"
        for i in range(per_series):
            rel = f"patient{s // 2}/series{s}/IM{i:05d}"
            write_dicom(root / rel, patient_id=f"PID-{s // 2:04d}", study_uid=study_uid,
                        series_uid=series_uid, **kind)
            written[rel] = kind
    write_sr(root / "patient0" / "report")
    (root / "README.txt").write_text("exported by a PACS\n")
    whole = write_dicom(root / "broken" / "whole.dcm", rows=64, columns=64)
    data = whole.read_bytes()
    (root / "broken" / "cut.dcm").write_bytes(data[: len(data) - 1000])
    whole.unlink()
    return written


def test_rows_statuses_and_labels(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _export(src)
    df = build_index(src, tmp_path / "index.parquet", salt=SALT)
    assert list(df["path"]) == sorted(df["path"])
    assert len(df) == 4 * 3 + 3
    by_path = df.set_index("path")
    knee = by_path.loc["patient0/series0/IM00000"]
    assert (knee["status"], knee["modality"], knee["anatomy"]) == ("ok", "MR", "knee")
    assert (knee["modality_source"], knee["anatomy_source"]) == ("Modality", "BodyPartExamined")
    axes = df.attrs["axes"]
    assert axes == index_axes(tmp_path / "index.parquet")
    assert [a for a, v in zip(axes, knee["multi_hot"]) if v] == ["MR", "knee"]
    spine = by_path.loc["patient0/series1/IM00002"]  # blank BPE: the description decides
    assert (spine["status"], spine["anatomy"], spine["anatomy_source"]) == ("ok", "lumbar_spine", "SeriesDescription")
    assert [a for a, v in zip(axes, spine["multi_hot"]) if v] == ["CT", "spine"]
    breast = by_path.loc["patient1/series2/IM00000"]  # breast has no radimagenet axis: kept, unmapped
    assert (breast["status"], breast["anatomy"]) == ("unmapped", "breast")
    nothing = by_path.loc["patient1/series3/IM00000"]
    assert (nothing["status"], nothing["anatomy"]) == ("unmapped", None) or pd.isna(nothing["anatomy"])
    assert by_path.loc["patient0/report", "status"] == "non_image"
    assert by_path.loc["README.txt", "status"] == "not_dicom"
    cut = by_path.loc["broken/cut.dcm"]
    assert cut["status"] == "error" and "truncated" in cut["error"]
    assert knee["Rows"] == 16 and knee["Manufacturer"] == "ACME" and knee["study_month"] == "2019-04"

    summary = summarize(df)
    assert summary.by_status == {"ok": 6, "unmapped": 6, "non_image": 1, "not_dicom": 1, "error": 1}
    assert summary.by_modality_anatomy[("MR", "knee")] == 3
    assert summary.not_in_profile == {("MR", "breast"): 3}
    assert summary.top_unmapped["SeriesDescription"] == [("Series 3", 3)]


def test_pseudonyms_and_no_phi_in_the_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _export(src)
    out = tmp_path / "index.parquet"
    df = build_index(src, out, salt=SALT)
    images = df[df["status"].isin(["ok", "unmapped"])]
    # same PatientID -> same key; keys are the documented HMAC
    assert images.groupby("patient_key")["study_key"].nunique().max() == 1
    assert set(images["patient_key"]) == {pseudonym(SALT.encode(), "patient", f"PID-{p:04d}") for p in (0, 1)}
    assert images["instance_key"].is_unique and images["instance_key"].str.startswith("ins-").all()
    data = out.read_bytes()
    table_text = pq.read_table(out).to_pandas().astype(str).to_csv()
    for secret in (FAKE_PATIENT_NAME, "Zyxwvut", FAKE_BIRTH_DATE, FAKE_ADDRESS, "PID-0000", "PID-0001",
                   "1.2.826.0.1.3680043.10.999", "20190412", SALT):
        assert secret.encode() not in data, secret
        assert secret not in table_text, secret
    assert read_index_meta(out).salt_fingerprint and SALT not in str(read_index_meta(out))

    kept = build_index(src, tmp_path / "kept.parquet", salt=SALT, keep_uids=True)
    kept_images = kept[kept["status"].isin(["ok", "unmapped"])]
    assert kept_images["study_key"].str.startswith("1.2.826.0.1.3680043.10.999.").all()
    assert kept_images["patient_key"].str.startswith("pat-").all()
    assert b"PID-0000" not in (tmp_path / "kept.parquet").read_bytes()


def test_salt_argument_file_and_stability(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _export(src, n_series=2)
    a = build_index(src, tmp_path / "a" / "index.parquet", salt=SALT)
    b = build_index(src, tmp_path / "b" / "index.parquet", salt=SALT)
    c = build_index(src, tmp_path / "c" / "index.parquet", salt="another")
    pd.testing.assert_series_equal(a["patient_key"], b["patient_key"])
    assert not (a["patient_key"].dropna() == c["patient_key"].dropna()).any()

    out = tmp_path / "d" / "index.parquet"
    first = build_index(src, out)  # no salt: generated once beside the index
    salt_file = out.parent / SALT_FILE
    assert salt_file.exists() and (salt_file.stat().st_mode & 0o777) == 0o600
    salt_value = salt_file.read_text()
    out.unlink()
    second = build_index(src, out)
    assert salt_file.read_text() == salt_value
    pd.testing.assert_series_equal(first["series_key"], second["series_key"])
    assert salt_value.strip().encode() not in out.read_bytes()


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a = a.sort_values("path").reset_index(drop=True)
    b = b.sort_values("path").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_incremental_run_equals_a_fresh_run(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _export(src)
    out = tmp_path / "out" / "index.parquet"
    first = run_index(src, out, salt=SALT, batch_size=4)
    assert first.read == first.files == 15

    # add, grow, touch, delete, and fix the truncated file
    write_dicom(src / "patient9" / "new" / "IM1", modality="US", body_part="THYROID")
    grown = src / "patient0" / "series0" / "IM00001"
    write_dicom(grown, modality="MR", body_part="SHOULDER", rows=32, columns=32)
    touched = src / "patient1" / "series2" / "IM00001"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    (src / "patient1" / "series3" / "IM00002").unlink()
    shutil.rmtree(src / "patient0" / "series1")
    second = run_index(src, out, salt=SALT, batch_size=4)
    # read: the new file, the grown one, the touched one, and the error row (always retried)
    assert second.read == 4
    assert second.files == 15 + 1 - 1 - 3
    assert second.reused == second.files - 4

    fresh = run_index(src, tmp_path / "fresh" / "index.parquet", salt=SALT, batch_size=7)
    _frames_equal(second.frame, fresh.frame)
    row = second.frame.set_index("path").loc["patient0/series0/IM00001"]
    assert row["anatomy"] == "shoulder" and row["Rows"] == 32

    third = run_index(src, out, salt=SALT, workers=2, batch_size=3)
    assert third.read == 1  # only the still-truncated file
    _frames_equal(third.frame, fresh.frame)


def test_changed_settings_rebuild_everything(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _export(src, n_series=2)
    out = tmp_path / "index.parquet"
    first = run_index(src, out, salt=SALT)
    assert first.files == first.read == 9
    assert run_index(src, out, salt=SALT).read == 1  # only the truncated file is retried
    with pytest.raises(ConfigError, match="another salt"):  # it would re-key the index silently
        run_index(src, out, salt="other")
    assert run_index(src, out, salt="other", rekey=True).read == 9  # asked for: every row re-keyed
    full = run_index(src, out, salt="other", profile="full")
    assert full.read == 9
    assert len(full.frame["multi_hot"].dropna().iloc[0]) == len(full.meta.axes) > 12


def test_a_failed_run_leaves_the_previous_index_byte_identical(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _export(src)
    out = tmp_path / "out" / "index.parquet"
    build_index(src, out, salt=SALT)
    before = out.read_bytes()
    write_dicom(src / "extra" / "IM1")
    calls = []

    def explode(done: int, total: int | None) -> None:
        calls.append(done)
        if done > 0:
            raise RuntimeError("killed midway")

    for workers in (1, 2):
        with pytest.raises(RuntimeError, match="killed midway"):
            build_index(src, out, salt=SALT, batch_size=2, workers=workers, progress=explode)
        assert out.read_bytes() == before
        assert sorted(p.name for p in out.parent.iterdir()) == ["index.local.parquet", "index.parquet"]  # no temp file left
    assert calls[0] == 0


def test_workers_give_the_same_frame(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _export(src, n_series=6)
    one = build_index(src, None, salt=SALT, workers=1, batch_size=5)
    two = build_index(src, None, salt=SALT, workers=2, batch_size=2)
    pd.testing.assert_frame_equal(one, two)


def test_in_memory_index_equals_the_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _export(src, n_series=2)
    pd.testing.assert_frame_equal(build_index(src, None, salt=SALT),
                                  build_index(src, tmp_path / "i.parquet", salt=SALT))


def test_index_inside_the_source_does_not_index_itself(tmp_path: Path) -> None:
    _export(tmp_path, n_series=2)
    out = tmp_path / "index.parquet"
    first = run_index(tmp_path, out)
    (tmp_path / ".index.parquet.stale.parquet.tmp").write_bytes(b"left by a killed run")
    second = run_index(tmp_path, out)
    paths = set(second.frame["path"])
    assert "index.parquet" not in paths and SALT_FILE not in paths
    assert ".index.parquet.stale.parquet.tmp" not in paths
    assert second.read == 1 and len(second.frame) == len(first.frame) == 9  # the truncated file


def test_empty_folder_gives_an_empty_index_and_a_warning(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    result = run_index(tmp_path / "src", tmp_path / "index.parquet")
    assert len(result.frame) == 0 and "multi_hot" in result.frame.columns
    assert any("no files" in w for w in result.summary.warnings)
    assert len(read_index(tmp_path / "index.parquet")) == 0


def test_bad_input_fails_before_reading_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    _export(src, n_series=1)
    import modan_dicom.ingest.index as index_mod

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a file was read")

    monkeypatch.setattr(index_mod, "read_header", no_reading)
    with pytest.raises(SourceError, match="no such folder"):
        build_index(tmp_path / "missing", tmp_path / "i.parquet")
    with pytest.raises(SourceError, match="not a folder"):
        build_index(src / "README.txt", tmp_path / "i.parquet")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(OutputError):
        build_index(src, tmp_path / "a-file" / "index.parquet")
    with pytest.raises(OutputError, match="is a folder"):
        build_index(src, src)
    with pytest.raises(ConfigError):
        build_index(src, tmp_path / "i.parquet", layout="weird")
    with pytest.raises(ConfigError):
        build_index(src, tmp_path / "i.parquet", workers=0)
    with pytest.raises(SourceError):
        read_index(tmp_path / "nothing.parquet")


def test_anatomic_region_sequence_and_encodings_end_to_end(tmp_path: Path) -> None:
    src = tmp_path / "src"
    # the coded region beats a contradicting Body Part Examined
    ds = make_dataset(modality="MR", body_part="HEAD", series_description="", study_description="",
                      anatomic_region=[("SCT", "72696002", "Knee")])
    write_dicom(src / "coded", ds, transfer_syntax=ImplicitVRLittleEndian, preamble=False, meta=False)
    df = build_index(src, None, salt=SALT).set_index("path")
    row = df.loc["coded"]
    # (labels.py names the source "AnatomicRegion", its raw key; the column holds the codes themselves)
    assert (row["anatomy"], row["anatomy_source"]) == ("knee", "AnatomicRegion")
    assert list(row["AnatomicRegionSequence"]) == [{"scheme": "SCT", "code": "72696002", "meaning": "Knee"}]
    assert row["TransferSyntaxUID"] is None or pd.isna(row["TransferSyntaxUID"])


def test_multi_hot_matches_the_vocabulary(tmp_path: Path) -> None:
    from modan_dicom.vocab import Vocabulary

    src = tmp_path / "src"
    _export(src)
    df = build_index(src, None, salt=SALT)
    vocab = Vocabulary.load("radimagenet")
    ok = df[df["status"] == "ok"]
    assert len(ok) == 6
    for _, row in ok.iterrows():
        np.testing.assert_array_equal(row["multi_hot"], vocab.encode(row["modality"], row["anatomy"]))
    assert df.loc[df["status"] != "ok", "multi_hot"].isna().all()  # no target without a place in the profile


def _index_slowly(src: str, out: str, flag: str) -> None:
    import time

    def progress(done: int, total: int | None) -> None:
        if done > 0:
            Path(flag).write_text("started")
            time.sleep(60)  # killed here, with a half-written temporary file

    build_index(src, out, salt=SALT, batch_size=2, progress=progress)


def test_a_killed_run_leaves_the_previous_index_intact(tmp_path: Path) -> None:
    import multiprocessing
    import signal
    import time

    src = tmp_path / "src"
    _export(src)
    out = tmp_path / "out" / "index.parquet"
    build_index(src, out, salt=SALT)
    before = out.read_bytes()
    write_dicom(src / "extra" / "IM1")
    flag = tmp_path / "flag"
    child = multiprocessing.get_context("fork").Process(target=_index_slowly, args=(str(src), str(out), str(flag)))
    child.start()
    deadline = time.monotonic() + 30
    while not flag.exists() and time.monotonic() < deadline and child.is_alive():
        time.sleep(0.05)
    assert flag.exists()
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert out.read_bytes() == before
    assert len(read_index(out)) == 15
    after = run_index(src, out, salt=SALT)  # the next run works, and ignores the stale temporary file
    assert after.files == 16 and after.read == 2  # the new file and the truncated one


def test_a_file_that_is_not_an_index_is_never_replaced(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _export(src, n_series=1)
    mine = tmp_path / "notes.parquet"
    mine.write_text("my own notes, not an index\n")
    with pytest.raises(OutputError, match="not a modan-dicom index; refusing to replace it"):
        build_index(src, mine, salt=SALT)
    assert mine.read_text() == "my own notes, not an index\n"
    index = tmp_path / "index.parquet"
    build_index(src, index, salt=SALT)
    build_index(src, index, salt=SALT)  # an index is replaced (incrementally), as before


def _index_into(src: str, out: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        result = run_index(src, out, return_frame=False)
        results.put(("ok", result.meta.salt_fingerprint))
    except OutputError as exc:
        results.put(("refused", str(exc)))


def test_concurrent_runs_never_publish_a_salt_that_is_not_kept(tmp_path: Path) -> None:
    from modan_dicom.ingest.pseudonym import salt_fingerprint

    src = tmp_path / "src"
    _export(src, n_series=1, per_series=1)
    ctx = multiprocessing.get_context("fork")
    for trial in range(3):
        folder = tmp_path / f"out{trial}"
        # runs into one output, and into a second output in the same folder (which shares its salt)
        outs = [folder / ("index.parquet" if i % 2 else "other.parquet") for i in range(6)]
        barrier, results = ctx.Barrier(len(outs)), ctx.Queue()
        children = [ctx.Process(target=_index_into, args=(str(src), str(out), barrier, results)) for out in outs]
        for child in children:
            child.start()
        outcomes = [results.get(timeout=60) for _ in children]
        for child in children:
            child.join()
        assert {kind for kind, _ in outcomes} <= {"ok", "refused"}
        for kind, message in outcomes:
            if kind == "refused":
                assert re.fullmatch(r"another modan-dicom run is writing (index|other)\.parquet \(pid \d+\); "
                                    r"wait for it or write elsewhere", message)
        kept = salt_fingerprint((folder / SALT_FILE).read_text().strip().encode())
        assert {fingerprint for kind, fingerprint in outcomes if kind == "ok"} == {kept}
        for name in ("index.parquet", "other.parquet"):
            assert read_index_meta(folder / name).salt_fingerprint == kept
        assert sorted(p.name for p in folder.iterdir()) == [
            SALT_FILE, "index.local.parquet", "index.parquet", "other.local.parquet", "other.parquet"]


def test_a_second_run_into_the_same_output_is_refused_with_one_line(tmp_path: Path) -> None:
    import signal
    import time

    from click.testing import CliRunner

    from modan_dicom.cli import main

    src = tmp_path / "src"
    _export(src, n_series=2)
    out = tmp_path / "out" / "index.parquet"
    flag = tmp_path / "flag"
    child = multiprocessing.get_context("fork").Process(target=_index_slowly, args=(str(src), str(out), str(flag)))
    child.start()
    try:
        deadline = time.monotonic() + 30
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(OutputError, match=rf"writing index.parquet \(pid {child.pid}\)"):
            run_index(src, out, salt=SALT)
        result = CliRunner().invoke(main, ["index", str(src), "-o", str(out), "--salt", SALT])
        assert result.exit_code == 2
        assert result.stderr.strip().splitlines() == [
            f"error: another modan-dicom run is writing index.parquet (pid {child.pid}); wait for it or write elsewhere"]
        assert not out.exists()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join()
    assert run_index(src, out, salt=SALT).files == 9  # the lock died with its holder
    # and its temporary file is gone
    assert sorted(p.name for p in out.parent.iterdir()) == ["index.local.parquet", "index.parquet"]


def test_another_salt_is_refused_unless_asked_to_rekey(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    _export(src, n_series=2)
    out = tmp_path / "out" / "index.parquet"
    first = run_index(src, out)  # the salt file is created beside it
    salt_file = out.parent / SALT_FILE
    before = out.read_bytes()
    monkeypatch.setenv(SALT_ENV, "another salt")
    with pytest.raises(ConfigError, match=r"built with another salt than this run's \(from \$MODAN_SALT\)"):
        run_index(src, out)
    monkeypatch.delenv(SALT_ENV)
    kept = salt_file.read_text()
    salt_file.unlink()  # lost: a new one would re-key the index for ever
    with pytest.raises(ConfigError, match="salt this run does not have"):
        run_index(src, out)
    assert not salt_file.exists() and out.read_bytes() == before
    salt_file.write_text(kept)  # restored: the index is reproducible again
    assert run_index(src, out).read == 1  # (the truncated file is always retried)
    rekeyed = run_index(src, out, salt="another salt", rekey=True)
    assert rekeyed.read == 9 and rekeyed.meta.salt_fingerprint != first.meta.salt_fingerprint
    keys = first.frame["patient_key"].dropna()
    assert set(keys).isdisjoint(rekeyed.frame["patient_key"].dropna()) and len(keys)
    assert run_index(src, out, salt="another salt").read == 1  # the new salt is now the index's


def test_links_out_of_the_source_are_rows_unless_followed(tmp_path: Path) -> None:
    src, elsewhere = tmp_path / "src", tmp_path / "elsewhere"
    _export(src, n_series=1, per_series=1)
    write_dicom(elsewhere / "outside.dcm", modality="MR", body_part="KNEE")
    (src / "linked-file").symlink_to(elsewhere / "outside.dcm")
    (src / "linked-folder").symlink_to(elsewhere)
    (src / "inside").symlink_to(src / "patient0")
    out = tmp_path / "index.parquet"
    rows = run_index(src, out, salt=SALT).frame.set_index("path")
    assert rows.loc["linked-file", "status"] == rows.loc["linked-folder", "status"] == "error"
    assert rows.loc["linked-file", "error"] == rows.loc["linked-folder", "error"] == "link leaves the source folder"
    assert rows.loc["inside/series0/IM00000", "status"] == "ok"  # links inside the source are followed
    followed = run_index(src, out, salt=SALT, follow_links=True).frame.set_index("path")
    assert followed.loc["linked-file", "status"] == followed.loc["linked-folder/outside.dcm", "status"] == "ok"
    assert "linked-folder" not in followed.index


def test_paths_longer_than_the_system_allows_are_rows(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _export(src, n_series=1, per_series=1)
    deep = deep_tree(src, depth=24)  # 24 levels of 200-byte names: 4.8 KB paths
    try:
        frame = run_index(src, tmp_path / "index.parquet", salt=SALT).frame.set_index("path")
        deep_rows = frame.loc[[rel for rel, _ in deep]]
        for (rel, too_long), (_, row) in zip(deep, deep_rows.iterrows()):
            assert len(os.fsencode(str(src / rel))) >= 4096 or not too_long
            if too_long:
                assert (row["status"], row["error"]) == ("error", "path longer than the system allows")
            else:
                assert row["status"] == "not_dicom"  # short enough: read as usual
        assert any(too for _, too in deep) and not all(too for _, too in deep)
        assert len(frame) == 4 + len(deep)  # every file on disk is a row (4 in the export)
    finally:
        shutil.rmtree(src)  # (rmtree walks by descriptors too)



def test_cli_rekey_and_follow_links_reach_the_index(tmp_path: Path) -> None:
    """`index --follow-links` and `--rekey` are passed through; given with an archive address they are refused."""
    from click.testing import CliRunner

    from modan_dicom.cli import main

    src, elsewhere = tmp_path / "src", tmp_path / "elsewhere"
    _export(src, n_series=1, per_series=1)
    write_dicom(elsewhere / "outside.dcm", modality="MR", body_part="KNEE")
    (src / "linked-file").symlink_to(elsewhere / "outside.dcm")
    out = tmp_path / "index.parquet"
    runner = CliRunner()
    assert runner.invoke(main, ["index", str(src), "-o", str(out), "--salt", SALT]).exit_code == 0
    assert read_index(out).set_index("path").loc["linked-file", "status"] == "error"
    assert runner.invoke(main, ["index", str(src), "-o", str(out), "--salt", SALT, "--follow-links"]).exit_code == 0
    assert read_index(out).set_index("path").loc["linked-file", "status"] == "ok"
    refused = runner.invoke(main, ["index", str(src), "-o", str(out), "--salt", "other"])
    assert refused.exit_code == 2 and "another salt" in refused.output
    assert runner.invoke(main, ["index", str(src), "-o", str(out), "--salt", "other", "--rekey"]).exit_code == 0
    archive = runner.invoke(main, ["index", "http://127.0.0.1:9/dicom-web", "-o", str(tmp_path / "c.parquet"),
                                   "--rekey"])
    assert archive.exit_code == 2 and "--rekey apply to a folder" in archive.output

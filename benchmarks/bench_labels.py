"""Labels on real archive metadata (issue 14, item 6).

    python benchmarks/bench_labels.py [--data ../shared/data/real-archive] [--code DIR] [--profile radimagenet]
                                      [--keep DIR] [--skip-all] [--show]
    python benchmarks/bench_labels.py --text-speed [--code DIR]

Against `dev-gold.csv` (121 curator-judged CT/MR/US series):

1. writes one tiny DICOM file (4 x 4 pixels) per series of every study that holds a gold series (the series'
   real Modality, Body Part Examined, Series/Study Description, Manufacturer from `dev-series.parquet`; synthetic
   UIDs), runs the real `modan-dicom index` on that folder in a subprocess (PYTHONPATH = --code, default this
   checkout) and scores the index's `multi_hot` anatomy axes;
2. scores Body Part Examined alone (the same vocabulary, in process: the value through `lookup_anatomy`);
3. on all of `dev-series.parquet` (157k series; in process, `resolve_labels` per distinct row, not 157k files):
   coverage (CT/MR/US series given a region) and tag/text agreement (series whose Body Part Examined and whose
   descriptions both give regions: the share where they share one).

Scoring (the data's README): a series is right when every region given is among the gold `regions`, wrong
when one is not; covered when gold is not `none` and the series is right. Precision = right / given, coverage =
right / (gold not `none`). The collection column is never shown to the labeller.

--text-speed times `resolve_labels` once per distinct CT/MR/US description (cold caches), then again (warm):
the cost text matching adds on the index's hot path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
SOP = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4", "US": "1.2.840.10008.5.1.4.1.1.6.1",
       "PT": "1.2.840.10008.5.1.4.1.1.128", "SEG": "1.2.840.10008.5.1.4.1.1.66.4",
       "SR": "1.2.840.10008.5.1.4.1.1.88.22", "RTSTRUCT": "1.2.840.10008.5.1.4.1.1.481.3",
       "MG": "1.2.840.10008.5.1.4.1.1.1.2", "CR": "1.2.840.10008.5.1.4.1.1.1", "NM": "1.2.840.10008.5.1.4.1.1.20"}
SECONDARY = "1.2.840.10008.5.1.4.1.1.7"
DATA = next((p / "shared" / "data" / "real-archive" for p in HERE.parents
             if (p / "shared" / "data" / "real-archive").is_dir()), HERE.parent / "shared" / "data" / "real-archive")
FIELDS = ("Modality", "BodyPartExamined", "SeriesDescription", "StudyDescription", "Manufacturer",
          "ManufacturerModelName")


def _value(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def write_studies(rows, folder: Path) -> None:
    """One tiny DICOM file per row (a series), named s<series>.dcm, in a folder per study."""
    import numpy as np
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    for row in rows:
        ds = pydicom.Dataset()
        modality = _value(row["Modality"])
        sop = SOP.get(modality, SECONDARY)
        series, study = int(row["series"]), int(row["study"])
        ds.SOPClassUID = sop
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.9.7{study}.{series}.1"
        ds.StudyInstanceUID = f"1.2.826.0.1.3680043.9.7{study}"
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.9.7{study}.{series}"
        ds.PatientID = f"P{int(row['patient'])}"
        ds.StudyDate = "20200101"
        for keyword in FIELDS:
            text = _value(row[keyword])
            if text:
                setattr(ds, keyword, text[:64])
        ds.Rows = ds.Columns = 4
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.zeros((4, 4), dtype=np.uint16).tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop, ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        path = folder / f"study{study}" / f"s{series}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)


def run_index(folder: Path, output: Path, code: Path, profile: str) -> tuple[dict[int, frozenset[str]], float]:
    """The real CLI on `folder`: series id -> anatomy axes of its ok row (empty when not ok), and seconds."""
    import numpy as np
    import pyarrow.parquet as pq

    env = dict(os.environ, PYTHONPATH=str(code))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "modan_dicom", "index", str(folder), "-o", str(output),
                    "--profile", profile, "--salt", "bench-labels"], check=True, env=env,
                   stdout=subprocess.DEVNULL, cwd=str(code))
    seconds = time.perf_counter() - start
    table = pq.read_table(output)
    meta = json.loads(table.schema.metadata[b"modan_dicom"])
    axes = meta["axes"]
    frame = table.to_pandas()
    out = {}
    for path, status, vector in zip(frame["path"], frame["status"], frame["multi_hot"]):
        series = int(Path(path).stem[1:])
        if status == "ok" and vector is not None:
            on = np.asarray(vector) > 0.5
            out[series] = frozenset(a for a, v in zip(axes, on) if v and a not in ("CT", "MR", "US"))
        else:
            out[series] = frozenset()
    return out, seconds


def score(given: dict[int, frozenset[str]], gold) -> dict[str, float]:
    """Precision and coverage (the README's rules) of series id -> regions given."""
    right = wrong = showing = covered = 0
    for series, regions in zip(gold["series"], gold["regions"]):
        truth = set() if regions == "none" else set(regions.split("|"))
        shows = bool(truth)
        showing += shows
        mine = given.get(int(series), frozenset())
        if not mine:
            continue
        if mine <= truth:
            right += 1
            covered += shows
        else:
            wrong += 1
    return {"given": right + wrong, "right": right, "wrong": wrong, "showing": showing,
            "precision": right / max(right + wrong, 1), "coverage": covered / max(showing, 1)}


def body_part_alone(vocab, gold) -> dict[int, frozenset[str]]:
    out = {}
    for series, modality, value in zip(gold["series"], gold["Modality"], gold["BodyPartExamined"]):
        anatomy = vocab.lookup_anatomy(_value(value))
        modality_id = vocab.lookup_modality(modality)
        out[int(series)] = _axes(vocab, modality_id, anatomy)
    return out


def _axes(vocab, modality_id, anatomy) -> frozenset[str]:
    if anatomy is None or vocab.project_modality(modality_id) is None:
        return frozenset()
    _, anatomy_axes = vocab.decode(vocab.encode(modality_id, anatomy))
    return frozenset(anatomy_axes)


def whole_archive(vocab, series) -> dict[str, float]:
    """Coverage and tag/text agreement of every CT/MR/US series (in process, one resolve per distinct row)."""
    from modan_dicom.ingest.labels import resolve_labels

    images = series[series["Modality"].isin(["CT", "MR", "US"])]
    keys = ["Modality", "BodyPartExamined", "SeriesDescription", "StudyDescription"]
    distinct = images.groupby(keys, dropna=False).size().reset_index(name="n")
    given = both = agree = 0
    by_source: Counter[str] = Counter()
    for row in distinct.itertuples(index=False):
        raw = {k: _value(getattr(row, k)) for k in keys}
        labels = resolve_labels(raw, vocab)
        if labels.mapped:
            given += row.n
            by_source[labels.anatomy_source] += row.n
        modality_id = vocab.lookup_modality(raw["Modality"])
        tag = _axes(vocab, modality_id, vocab.lookup_anatomy(raw["BodyPartExamined"]))
        text = frozenset()
        for keyword in ("SeriesDescription", "StudyDescription"):
            text = _axes(vocab, modality_id, vocab.match_text(raw[keyword]))
            if text:
                break
        if tag and text:
            both += row.n
            agree += row.n * bool(tag & text)
    return {"series": len(images), "distinct": len(distinct), "covered": given / max(len(images), 1),
            "tag_and_text": both, "agreement": agree / max(both, 1), "by_source": dict(by_source.most_common())}


def text_speed(vocab, series) -> tuple[int, float, float]:
    """(distinct descriptions, us per description with cold caches, us with warm caches) of resolve_labels."""
    from modan_dicom.ingest.labels import resolve_labels

    images = series[series["Modality"].isin(["CT", "MR", "US"])]
    texts = sorted({v for c in ("SeriesDescription", "StudyDescription") for v in images[c].dropna() if v})
    start = time.perf_counter()
    for text in texts:
        resolve_labels({"Modality": "CT", "SeriesDescription": text}, vocab)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    for text in texts:
        resolve_labels({"Modality": "CT", "SeriesDescription": text}, vocab)
    warm = time.perf_counter() - start
    return len(texts), cold / len(texts) * 1e6, warm / len(texts) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--code", type=Path, default=HERE, help="Checkout whose modan_dicom is measured.")
    parser.add_argument("--profile", default="radimagenet")
    parser.add_argument("--keep", type=Path, default=None, help="Write the files and index here (kept).")
    parser.add_argument("--skip-all", action="store_true", help="Skip the whole-archive part.")
    parser.add_argument("--show", action="store_true", help="List the gold series scored wrong or uncovered.")
    parser.add_argument("--text-speed", action="store_true",
                        help="Only time resolve_labels per distinct description (cold, then warm caches).")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    import pandas as pd

    from modan_dicom.vocab import load_vocabulary

    series = pd.read_parquet(args.data / "dev-series.parquet")
    if args.text_speed:
        vocab = load_vocabulary(args.profile)
        vocab.match_text("compile the matcher")
        n, cold, warm = text_speed(vocab, series)
        print(f"resolve_labels over {n} distinct descriptions: {cold:.1f} us each (cold caches), {warm:.1f} us (warm)")
        return
    gold = pd.read_csv(args.data / "dev-gold.csv", dtype=str, keep_default_na=False)
    gold = gold[gold["regions"] != "unknown"]
    studies = set(series.loc[series["series"].isin(gold["series"].astype(int)), "study"])
    rows = series[series["study"].isin(studies)].to_dict("records")
    with tempfile.TemporaryDirectory(prefix="bench-labels-") as tmp:
        work = args.keep or Path(tmp)
        (work / "export").mkdir(parents=True, exist_ok=True)
        write_studies(rows, work / "export")
        given, seconds = run_index(work / "export", work / "index.parquet", args.code.resolve(), args.profile)
    vocab = load_vocabulary(args.profile)
    index_score = score(given, gold)
    tag_score = score(body_part_alone(vocab, gold), gold)
    print(f"gold: {len(gold)} series ({index_score['showing']} show one of the 9 regions); "
          f"{len(rows)} series of {len(studies)} studies indexed in {seconds:.1f} s")
    for name, s in (("modan-dicom index", index_score), ("Body Part Examined alone", tag_score)):
        print(f"{name:26s} precision {s['precision']:.3f} ({s['right']}/{s['given']})   "
              f"coverage {s['coverage']:.3f}")
    if args.show:
        for row in gold.itertuples(index=False):
            mine = given.get(int(row.series), frozenset())
            truth = set() if row.regions == "none" else set(row.regions.split("|"))
            if (mine and not mine <= truth) or (truth and not mine):
                print(f"  case {row.case}: gave {'|'.join(sorted(mine)) or '-'} want {row.regions}: "
                      f"{row.Modality} bp={row.BodyPartExamined!r} sd={row.SeriesDescription!r} "
                      f"std={row.StudyDescription!r}")
    if not args.skip_all:
        start = time.perf_counter()
        whole = whole_archive(vocab, series)
        print(f"dev-series (in process, {whole['series']} CT/MR/US series, {whole['distinct']} distinct rows, "
              f"{time.perf_counter() - start:.1f} s): coverage {whole['covered']:.3f}; tag and text both give a "
              f"region for {whole['tag_and_text']} series, agreeing on {whole['agreement']:.3f}; "
              f"decided by {whole['by_source']}")


if __name__ == "__main__":
    main()

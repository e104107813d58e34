"""Task adapters: every layout read from a small replica built here, folds, labels, errors."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modan_dicom.errors import ConfigError, DatasetError
from modan_dicom.evaluate.tasks import (SPLITS, Task, load_task, make_folds, read_folds, save_folds, tirads_label)
from modan_dicom.synth.tasks import CSV_FORMAT, synth_task

# ---- helpers ---------------------------------------------------------------------------------------


def _png(path: Path, value: int = 0, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8), mode="L").save(path)
    return path


def _one_line_error(exc: pytest.ExceptionInfo[BaseException], *words: str) -> str:
    text = str(exc.value)
    assert "\n" not in text
    for word in words:
        assert word in text, text
    return text


def _check_partition(task: Task) -> None:
    """Every item in exactly one test part; parts of a fold disjoint; groups never straddle."""
    counts = np.zeros(len(task.items), int)
    groups = task.groups
    for fold in task.folds:
        counts[fold.test] += 1
        parts = [set(fold.part(s).tolist()) for s in SPLITS]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        seen = [set(groups[fold.part(s)].tolist()) for s in SPLITS]
        assert not (seen[0] & seen[2]) and not (seen[1] & seen[2]) and not (seen[0] & seen[1])
        assert sum(len(p) for p in parts) == len(task.items)
    assert (counts == 1).all()


def _read_csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small radimagenet-layout replicas of the three tasks under one data folder (read-only)."""
    root = tmp_path_factory.mktemp("replicas")
    for task in ("acl", "breast", "thyroid"):
        synth_task(task, root, seed=5, image_size=24, n_images=60)
    return root


# ---- radimagenet layout ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["acl", "breast", "thyroid"])
def test_radimagenet_replica_reads_with_its_shipped_folds(replicas: Path, name: str) -> None:
    task = load_task(name, replicas)
    assert task.name == name and task.layout == "radimagenet" and task.root == replicas / name
    prefix, path_col, label_col, values = CSV_FORMAT[name]
    frames = replicas / name / "dataframe"
    # labels and folds exactly as the CSV files say (read independently with the csv module)
    labels = {}
    for fold in task.folds:
        for split in SPLITS:
            rows = _read_csv_rows(frames / f"{prefix}{split}_fold{fold.number}.csv")
            assert set(task.items["id"].iloc[fold.part(split)]) == {r[path_col] for r in rows}
            labels.update({r[path_col]: values.index(r[label_col]) for r in rows})
    assert dict(zip(task.items["id"], task.labels.tolist())) == labels
    assert len(task.items) == len(list((replicas / name / "images").glob("*.png"))) == 60
    assert all(Path(p).is_file() and Path(p).is_absolute() for p in task.items["path"])
    _check_partition(task)
    assert task.warnings == ()
    # groups: exam number for ACL, DDTI case for thyroid, the file for breast
    stems = task.items["id"].map(lambda i: Path(i).stem)
    expected = {"acl": stems.str.split("_").str[0], "thyroid": stems.str.split("_").str[0], "breast": stems}[name]
    assert task.items["group"].tolist() == expected.tolist()
    assert (task.positive_name, task.negative_name) == {"acl": ("tear", "intact")}.get(name, ("malignant", "benign"))
    # the task folder itself, or a path, reads the same; options for built folds do not apply here
    direct = load_task(name, replicas / name)
    by_path = load_task(replicas / name, seed=3, work_dir=replicas / "unused", progress=print)
    assert by_path.name == name and not (replicas / "unused").exists()
    for other in (direct, by_path):
        pd.testing.assert_frame_equal(other.items, task.items)
        assert [f.test.tolist() for f in other.folds] == [f.test.tolist() for f in task.folds]


def test_radimagenet_names_and_values_of_the_real_folders(tmp_path: Path) -> None:
    root = tmp_path / "thyroid"
    rows = {1: [], 2: [], 3: [], 4: [], 5: []}
    for case in range(1, 11):
        for k in (1, 2) if case % 3 == 0 else (1,):
            _png(root / "images" / f"{case}_{k}.jpg")
            rows[(case % 5) + 1].append((f"images/{case}_{k}.jpg", "malignant" if case % 2 else "benign"))
    for k in range(1, 6):
        train = [j for j in range(1, 6) if j not in (k, k % 5 + 1)]
        for split, folds in (("test", [k]), ("val", [k % 5 + 1]), ("train", train)):
            lines = ["img_dir,label"] + [f"{p},{lab}" for j in folds for p, lab in rows[j]]
            (root / "dataframe").mkdir(parents=True, exist_ok=True)
            (root / "dataframe" / f"thyroid_{split}_fold{k}.csv").write_text("\n".join(lines) + "\n")
    task = load_task("thyroid", tmp_path)
    assert len(task.items) == 13 and set(task.items["group"]) == {str(c) for c in range(1, 11)}
    assert task.items.set_index("id").loc["images/3_2.jpg", "label"] == 1
    assert task.items.set_index("id").loc["images/4_1.jpg", "label"] == 0
    _check_partition(task)
    # a bare file name resolves under images/; "normal" counts as benign
    first = root / "dataframe" / "thyroid_test_fold1.csv"
    first.write_text(first.read_text().replace("images/5_1.jpg,malignant", "5_1.jpg,malignant"))
    assert "images/5_1.jpg" in set(load_task("thyroid", tmp_path).items["id"])
    # a group split across train and test of a fold is kept as shipped, with a warning
    val = root / "dataframe" / "thyroid_train_fold1.csv"
    val.write_text(val.read_text() + "images/5_1.jpg,malignant\n")
    assert any("both train and test" in w for w in load_task("thyroid", tmp_path).warnings)


def test_radimagenet_malformed_folders_name_the_layout(replicas: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(replicas / "breast", data / "breast")
    frames = data / "breast" / "dataframe"
    (frames / "breast_val_fold3.csv").unlink()
    with pytest.raises(DatasetError) as exc:
        load_task("breast", data)
    _one_line_error(exc, "breast_val_fold3.csv", "radimagenet layout", "filename,label")
    shutil.copy(frames / "breast_val_fold2.csv", frames / "breast_val_fold3.csv")
    load_task("breast", data)  # repaired
    (frames / "breast_val_fold3.csv").write_text("file,diagnosis\nimages/x.png,benign\n")
    with pytest.raises(DatasetError) as exc:
        load_task("breast", data)
    _one_line_error(exc, "columns file,diagnosis", "radimagenet layout")
    shutil.copy(frames / "breast_val_fold2.csv", frames / "breast_val_fold3.csv")
    next((data / "breast" / "images").glob("*.png")).unlink()
    with pytest.raises(DatasetError) as exc:
        load_task("breast", data)
    _one_line_error(exc, "1 of 60 listed images are missing", "radimagenet layout")
    shutil.copytree(replicas / "breast", data / "breast2")
    test1 = data / "breast2" / "dataframe" / "breast_test_fold1.csv"
    test1.write_text(test1.read_text().replace(",benign", ",unsure", 1))
    with pytest.raises(DatasetError) as exc:
        load_task(data / "breast2")
    _one_line_error(exc, "unknown label 'unsure'")
    test1.write_text(test1.read_text().replace(",unsure", ",malignant", 1))
    with pytest.raises(DatasetError) as exc:
        load_task(data / "breast2")
    _one_line_error(exc, "both labels")


def test_missing_task_names_both_layouts(tmp_path: Path) -> None:
    (tmp_path / "acl").mkdir()
    with pytest.raises(DatasetError) as exc:
        load_task("acl", tmp_path)
    _one_line_error(exc, "radimagenet layout", "mrnet layout")
    with pytest.raises(DatasetError) as exc:
        load_task("thyroid", tmp_path / "nowhere")
    _one_line_error(exc, "ddti layout")
    with pytest.raises(ConfigError):
        load_task("acl")
    with pytest.raises(ConfigError):
        load_task("acl", tmp_path, layout="nonsense")
    with pytest.raises(DatasetError) as exc:
        load_task(tmp_path / "missing.csv")
    _one_line_error(exc, "no such file", "csv layout")


# ---- MRNet -----------------------------------------------------------------------------------------


def _mrnet(root: Path, n_train: int = 10, n_valid: int = 4) -> dict[str, np.ndarray]:
    """MRNet-v1.0 under root: volumes whose slice s of exam e holds the value (7 e + s) % 256."""
    rng = np.random.default_rng(0)
    volumes = {}
    for split, exams in (("train", range(n_train)), ("valid", range(n_train, n_train + n_valid))):
        lines = []
        for e in exams:
            exam = f"{e:04d}"
            n = int(rng.integers(2, 8))
            for plane in ("axial", "coronal", "sagittal"):
                vol = np.empty((n, 12, 12), np.uint8)
                for s in range(n):
                    vol[s] = (7 * e + s + (50 if plane == "coronal" else 0)) % 256
                vol[:, 0, 0] = 255
                (root / split / plane).mkdir(parents=True, exist_ok=True)
                np.save(root / split / plane / f"{exam}.npy", vol)
                volumes[f"{plane}/{exam}"] = vol
            lines.append(f"{exam},{e % 2}")
        (root / f"{split}-acl.csv").write_text("\n".join(lines) + "\n")
    return volumes


def test_mrnet_extracts_the_middle_slices_and_saves_folds(tmp_path: Path) -> None:
    data = tmp_path / "data"
    volumes = _mrnet(data / "MRNet-v1.0")
    work = tmp_path / "work"
    calls: list[tuple[int, int | None]] = []
    task = load_task("acl", data, work_dir=work, progress=lambda done, total: calls.append((done, total)))
    assert task.layout == "mrnet" and task.name == "acl"
    assert calls[-1] == (14, 14) and len(calls) == 14
    expected_ids = []
    for key, vol in volumes.items():
        plane, exam = key.split("/")
        if plane == "sagittal":
            n = vol.shape[0]
            k = min(3, n)
            expected_ids += [f"{exam}_sagittal_{s}.png" for s in range((n - k) // 2, (n - k) // 2 + k)]
    assert sorted(task.items["id"]) == sorted(expected_ids)
    for row in task.items.itertuples():
        exam, _, s = row.id[:-4].split("_")
        pixels = np.asarray(Image.open(row.path))
        np.testing.assert_array_equal(pixels, volumes[f"sagittal/{exam}"][int(s)])
        assert row.group == exam and row.label == int(exam) % 2
        assert Path(row.path).is_relative_to(work / "modan-cache")
    _check_partition(task)
    assert task.folds_path == work / "folds-acl-sagittal-mid3.csv" and task.folds_path.is_file()
    # reloading reuses the cache and the saved folds (even with another seed)
    stamps = {p: Path(p).stat().st_mtime_ns for p in task.items["path"]}
    again = load_task("acl", data, work_dir=work, seed=99)
    assert [f.test.tolist() for f in again.folds] == [f.test.tolist() for f in task.folds]
    assert {p: Path(p).stat().st_mtime_ns for p in again.items["path"]} == stamps
    # other planes and slice choices
    coronal = load_task("acl", data, layout="mrnet", plane="coronal", slices=[0, 1], work_dir=work)
    assert len(coronal.items) == 28 and set(coronal.items["id"].str.split("_").str[2]) == {"0.png", "1.png"}
    row = coronal.items.iloc[0]
    np.testing.assert_array_equal(np.asarray(Image.open(row.path)), volumes[f"coronal/{row.group}"][0])
    every = load_task(data / "MRNet-v1.0", slices="all", work_dir=work)
    assert len(every.items) == sum(v.shape[0] for k, v in volumes.items() if k.startswith("sagittal"))
    # without work_dir the cache and folds go beside the data
    beside = load_task("acl", data)
    assert beside.folds_path == data / "MRNet-v1.0" / "folds-acl-sagittal-mid3.csv"
    assert all(Path(p).is_relative_to(data / "MRNet-v1.0" / "modan-cache") for p in beside.items["path"])


def test_mrnet_malformed(tmp_path: Path) -> None:
    root = tmp_path / "MRNet-v1.0"
    _mrnet(root)
    (root / "train" / "sagittal" / "0003.npy").unlink()
    with pytest.raises(DatasetError) as exc:
        load_task("acl", tmp_path)
    _one_line_error(exc, "1 of 14 volumes are missing", "train/sagittal/0003.npy", "mrnet layout")
    np.save(root / "train" / "sagittal" / "0003.npy", np.zeros((4, 8, 8), np.float32))
    with pytest.raises(DatasetError) as exc:
        load_task("acl", tmp_path)
    _one_line_error(exc, "uint8", "mrnet layout")
    np.save(root / "train" / "sagittal" / "0003.npy", np.zeros((4, 8, 8), np.uint8))
    (root / "valid-acl.csv").write_text("0010,1\n0011,2\n")
    with pytest.raises(DatasetError) as exc:
        load_task("acl", tmp_path)
    _one_line_error(exc, "0 or 1", "mrnet layout")
    (root / "valid-acl.csv").write_text("0001,1\n")
    with pytest.raises(DatasetError) as exc:
        load_task("acl", tmp_path)
    _one_line_error(exc, "both train-acl.csv and valid-acl.csv")
    with pytest.raises(ConfigError) as exc:
        load_task("acl", tmp_path, plane="sagittal", colour=True)
    _one_line_error(exc, "colour")


# ---- BUSI ------------------------------------------------------------------------------------------


def _busi(root: Path, counts: dict[str, int]) -> None:
    for folder, n in counts.items():
        for i in range(1, n + 1):
            _png(root / folder / f"{folder} ({i}).png", 40)
            _png(root / folder / f"{folder} ({i})_mask.png", 255)
            if i % 4 == 0:
                _png(root / folder / f"{folder} ({i})_mask_1.png", 255)


def test_busi_skips_masks_and_maps_normal_to_benign(tmp_path: Path) -> None:
    root = tmp_path / "Dataset_BUSI_with_GT"
    _busi(root, {"benign": 12, "malignant": 8, "normal": 5})
    task = load_task("breast", tmp_path)
    assert task.layout == "busi" and len(task.items) == 25
    assert not task.items["id"].str.contains("mask").any()
    by_id = task.items.set_index("id")
    assert by_id.loc["normal/normal (3).png", "label"] == 0 and by_id.loc["benign/benign (1).png", "label"] == 0
    assert by_id.loc["malignant/malignant (8).png", "label"] == 1
    assert (task.items["group"] == task.items["id"].map(lambda i: Path(i).stem)).all()
    _check_partition(task)
    assert task.folds_path == root / "folds-breast.csv"
    strict = load_task("breast", tmp_path, normal_as_benign=False)
    assert len(strict.items) == 20 and not strict.items["id"].str.startswith("normal").any()
    assert strict.warnings[0] == "5 normal images left out (normal_as_benign=False)"
    assert strict.folds_path == root / "folds-breast-no-normal.csv"
    shutil.rmtree(root / "malignant")
    with pytest.raises(DatasetError) as exc:
        load_task("breast", tmp_path)
    _one_line_error(exc, "busi layout")


# ---- DDTI ------------------------------------------------------------------------------------------


_TIRADS_OF_CASE = {1: "2", 2: "3", 3: "4a", 4: "4b", 5: "4c", 6: "5", 7: "", 8: "1", 9: "2", 10: "3",
                   11: "5", 12: "4a", 13: "2", 14: "5", 15: "3", 16: "4c"}


def _ddti(root: Path) -> None:
    for case, tirads in _TIRADS_OF_CASE.items():
        (root / f"{case}.xml").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{case}.xml").write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<case><number>{case}</number>'
                                          f"<age>50</age><sex>F</sex><tirads>{tirads}</tirads>"
                                          f"<mark><image>1</image><svg>[]</svg></mark></case>")
        for k in range(1, 3 if case % 4 == 0 else 2):
            Image.fromarray(np.full((10, 12, 3), 90, np.uint8)).save(root / f"{case}_{k}.jpg", quality=90)
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(root / "99_1.jpg")  # an image without a case file


def test_ddti_maps_tirads_and_counts_what_it_leaves_out(tmp_path: Path) -> None:
    _ddti(tmp_path / "ddti")
    task = load_task("thyroid", tmp_path / "ddti")
    assert task.layout == "ddti" and task.name == "thyroid"
    expected = {}
    for case, tirads in _TIRADS_OF_CASE.items():
        if tirads in ("", "1"):
            continue
        for k in range(1, 3 if case % 4 == 0 else 2):
            expected[f"{case}_{k}.jpg"] = 0 if tirads in ("2", "3") else 1
    assert dict(zip(task.items["id"], task.labels.tolist())) == expected
    assert set(task.items["group"]) == {str(c) for c, t in _TIRADS_OF_CASE.items() if t not in ("", "1")}
    assert "3 images left out: TI-RADS not in 2-5 ('', '1')" in task.warnings  # case 8 has two
    assert "1 images left out: no {case}.xml beside them" in task.warnings
    _check_partition(task)
    (tmp_path / "ddti" / "3.xml").write_text("<case><tirads>4a</case>")
    with pytest.raises(DatasetError) as exc:
        load_task("thyroid", tmp_path / "ddti")
    _one_line_error(exc, "3.xml", "not XML", "ddti layout")
    (tmp_path / "ddti" / "3.xml").write_text('<!DOCTYPE case [<!ENTITY x "4a">]><case><tirads>&x;</tirads></case>')
    with pytest.raises(DatasetError) as exc:
        load_task("thyroid", tmp_path / "ddti")
    _one_line_error(exc, "DTD")


def test_tirads_values() -> None:
    values = ("2", "3", "4", "4a", "4B", " 4c ", "5", "TR5", "TI-RADS 3")
    assert [tirads_label(v) for v in values] == [0, 0, 1, 1, 1, 1, 1, 1, 0]
    assert [tirads_label(v) for v in ("", "1", "6", "benign")] == [None] * 4


# ---- generic layouts -------------------------------------------------------------------------------


def test_class_folders_positive_class_and_case_groups(tmp_path: Path) -> None:
    root = tmp_path / "cls"
    for i in range(12):
        _png(root / "intact" / f"case{i}" / "a.png")
        _png(root / "intact" / f"case{i}" / "b.png")
        if i < 7:
            _png(root / "torn" / f"t{i}.png")
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not an image")
    task = load_task(root)
    assert task.layout == "folders" and task.name == "custom"
    assert (task.positive_name, task.negative_name) == ("torn", "intact")
    assert int(task.labels.sum()) == 7 and len(task.items) == 31
    by_id = task.items.set_index("id")
    assert by_id.loc["intact/case3/b.png", "group"] == "intact/case3"
    assert by_id.loc["torn/t2.png", "group"] == "torn/t2.png"
    _check_partition(task)
    (root / "folds.csv").unlink()
    flipped = load_task(root, positive="intact", group_pattern=r"(case\d+|t\d+)")
    assert int(flipped.labels.sum()) == 24 and flipped.items.set_index("id").loc["torn/t2.png", "group"] == "t2"
    _png(root / "third" / "x.png")
    with pytest.raises(DatasetError) as exc:
        load_task(root)
    _one_line_error(exc, "3 class folders", "folders layout")


def test_csv_layout_labels_groups_and_errors(tmp_path: Path) -> None:
    for i in range(20):
        _png(tmp_path / "img" / f"{i}.png")
    rows = [f"img/{i}.png,{'yes' if i % 3 == 0 else 'no'},p{i // 2}" for i in range(20)]
    table = tmp_path / "labels.csv"
    table.write_text("path,label,group\n" + "\n".join(rows) + "\n")
    task = load_task(table)
    assert task.layout == "csv" and (task.positive_name, task.negative_name) == ("yes", "no")
    assert task.items.set_index("id").loc["img/9.png", "label"] == 1
    assert task.items.set_index("id").loc["img/9.png", "group"] == "p4"
    assert task.folds_path == tmp_path / "labels.folds.csv"
    _check_partition(task)
    names = tmp_path / "names.csv"
    names.write_text("path,label\n" + "\n".join(f"img/{i}.png,{'cat' if i < 8 else 'dog'}" for i in range(20)) + "\n")
    assert int(load_task(names).labels.sum()) == 12  # "dog", the alphabetically second
    (tmp_path / "names.folds.csv").unlink()
    assert int(load_task(names, positive="cat").labels.sum()) == 8
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nimg/1.png,a\nimg/2.png,b\nimg/3.png,c\n")
    with pytest.raises(DatasetError) as exc:
        load_task(bad)
    _one_line_error(exc, "two classes")
    bad.write_text("path,label\nimg/1.png,yes\nimg/missing.png,no\n")
    with pytest.raises(DatasetError) as exc:
        load_task(bad)
    _one_line_error(exc, "1 of 2 listed images are missing", "csv layout")
    bad.write_text("file,y\nimg/1.png,1\n")
    with pytest.raises(DatasetError) as exc:
        load_task(bad)
    _one_line_error(exc, "csv layout")


def test_index_layout_with_a_label_csv(tmp_path: Path) -> None:
    from modan_dicom.ingest import build_index, read_index
    from modan_dicom.synth import synth_export

    export = tmp_path / "export"
    synth_export(export, n_patients=2, image_size=64)
    index_path = tmp_path / "index.parquet"
    build_index(export, index_path, salt="task-salt")
    index = read_index(index_path)
    ok = index[index["status"] == "ok"]
    labels = pd.DataFrame({"path": ok["path"], "label": (ok["modality"] == "MR").astype(int)}).reset_index(drop=True)
    labels["group"] = labels["path"].map(lambda p: "/".join(p.split("/")[:3]))  # the series
    labels.loc[len(labels)] = {"path": "not/in/index.dcm", "label": 1, "group": "x"}
    labels.to_csv(tmp_path / "labels.csv", index=False)
    task = load_task(index_path, labels=tmp_path / "labels.csv")
    assert task.layout == "index" and len(task.items) == len(ok)
    assert sorted(task.items["id"]) == sorted(ok["path"])
    assert all(Path(p).is_file() and Path(p).is_relative_to(export) for p in task.items["path"])
    expected = dict(zip(ok["path"], (ok["modality"] == "MR").astype(int)))
    assert dict(zip(task.items["id"], task.labels.tolist())) == expected
    assert task.warnings[0].startswith("1 labelled paths are not images in the index")
    _check_partition(task)
    # without a group column, images group by patient: two patients are too few for five folds
    labels.drop(columns="group").to_csv(tmp_path / "by_patient.csv", index=False)
    with pytest.raises(DatasetError) as exc:
        load_task(index_path, labels=tmp_path / "by_patient.csv")
    _one_line_error(exc, "at least 5 groups")
    two = load_task(index_path, labels=tmp_path / "by_patient.csv", n_folds=2)
    patients = dict(zip(ok["path"], ok["patient_key"]))
    assert task.items["group"].nunique() > two.items["group"].nunique() == 2
    assert (two.items["group"] == two.items["id"].map(patients)).all()
    _check_partition(two)
    with pytest.raises(DatasetError) as exc:
        load_task(index_path)
    _one_line_error(exc, "labels=CSV", "index layout")


# ---- folds -----------------------------------------------------------------------------------------


def test_make_folds_are_grouped_stratified_and_seeded() -> None:
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(150), rng.integers(1, 5, 150))
    labels = (rng.random(150) < 0.3).astype(int)[groups]
    folds = make_folds(labels, groups, seed=1)
    assert [f.number for f in folds] == [1, 2, 3, 4, 5]
    counts = np.zeros(len(labels), int)
    for f in folds:
        counts[f.test] += 1
        assert set(groups[f.train]).isdisjoint(groups[f.test]) and set(groups[f.val]).isdisjoint(groups[f.test])
        assert set(groups[f.train]).isdisjoint(groups[f.val])
        assert len(f.train) + len(f.val) + len(f.test) == len(labels)
        assert abs(labels[f.test].mean() - labels.mean()) < 0.06
        assert abs(labels[f.val].mean() - labels.mean()) < 0.12
        assert 0.06 < len(f.val) / len(labels) < 0.14
    assert (counts == 1).all()
    again = make_folds(labels, groups, seed=1)
    other = make_folds(labels, groups, seed=2)
    assert all(np.array_equal(a.part(s), b.part(s)) for a, b in zip(folds, again) for s in SPLITS)
    assert any(not np.array_equal(a.test, b.test) for a, b in zip(folds, other))
    with pytest.raises(DatasetError) as exc:
        make_folds(np.array([0, 1, 0, 1]), np.array([1, 2, 3, 4]))
    _one_line_error(exc, "at least 5 groups")


def test_saved_folds_round_trip_and_must_match(tmp_path: Path) -> None:
    ids = np.array([f"im{i:02d}" for i in range(30)], dtype=object)
    labels = np.arange(30) % 2
    folds = make_folds(labels, np.arange(30) // 2, seed=4)
    path = save_folds(tmp_path / "folds.csv", ids, folds)
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["id", "fold", "split"] and len(frame) == 5 * 30
    back = read_folds(path, ids)
    assert all(np.array_equal(a.part(s), b.part(s)) for a, b in zip(folds, back) for s in SPLITS)
    with pytest.raises(DatasetError) as exc:
        read_folds(path, ids[:-1])
    _one_line_error(exc, "do not match", "delete the file")
    with pytest.raises(DatasetError) as exc:
        read_folds(path, np.append(ids, "im99"))
    _one_line_error(exc, "1 images not in the file")
    path.write_text("id,fold,split\nim00,1,holdout\n")
    with pytest.raises(DatasetError):
        read_folds(path, ids)


def test_built_folds_are_saved_once_and_reused(tmp_path: Path) -> None:
    root = tmp_path / "Dataset_BUSI_with_GT"
    _busi(root, {"benign": 15, "malignant": 10})
    first = load_task("breast", tmp_path, seed=1)
    saved = (root / "folds-breast.csv").read_bytes()
    def tests(task: Task) -> list[list[int]]:
        return [f.test.tolist() for f in task.folds]

    second = load_task("breast", tmp_path, seed=2)  # the saved file wins over the seed
    assert tests(first) == tests(second)
    assert (root / "folds-breast.csv").read_bytes() == saved
    (root / "folds-breast.csv").unlink()
    assert tests(load_task("breast", tmp_path, seed=1)) == tests(first)  # same seed, same folds
    (root / "folds-breast.csv").unlink()
    assert tests(load_task("breast", tmp_path, seed=2)) != tests(first)
    _png(root / "benign" / "benign (99).png")  # the data changed: the saved folds no longer fit
    with pytest.raises(DatasetError) as exc:
        load_task("breast", tmp_path)
    _one_line_error(exc, "do not match", "1 images not in the file")
    elsewhere = load_task("breast", tmp_path, folds_path=tmp_path / "mine.csv")
    assert elsewhere.folds_path == tmp_path / "mine.csv" and len(elsewhere.items) == 26

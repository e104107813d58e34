"""`embed` (features of an index's images per encoder, to Parquet) and `visualize` (UMAP panels, PNG).

Real DICOM files (the session's synthetic export), real decoding, real torch and umap-learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torchvision
from click.testing import CliRunner

from modan_dicom.cli import main
from modan_dicom.data.transforms import resize_unit_image
from modan_dicom.errors import ConfigError, SourceError
from modan_dicom.evaluate.embed import (
    embed,
    parse_init,
    parse_inits,
    read_embeddings,
    read_embeddings_meta,
    stratified_sample,
)
from modan_dicom.evaluate.visualize import pair_colors, umap_coordinates, umap_figure, visualize
from modan_dicom.imaging import load_image
from modan_dicom.ingest import read_index, read_index_metadata, resolve_index_root
from modan_dicom.models import build_encoder, load_encoder, save_encoder

SIZE = 32


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random paper-stem ResNet-18 with non-trivial BatchNorm statistics, saved as an encoder file."""
    torch.manual_seed(123)
    net = build_encoder("paper")
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("enc") / "tiny.pt"
    save_encoder(net, path, {"method": "test"})
    return path


@pytest.fixture(scope="module")
def embedded(small_index: Path, tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("emb") / "embeddings.parquet"
    calls: list[tuple[int, int | None]] = []
    embed(small_index, {"tiny": tiny_encoder, "scratch": "scratch"}, out, image_size=SIZE, device="cpu",
          workers=1, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1][0] == calls[-1][1]  # progress reaches its total
    return out


def _expected_rows(small_index: Path, profile: str = "radimagenet") -> dict[str, tuple[str, str]]:
    """file_key -> (raw modality, raw anatomy) of the rows that should be embedded, from the index directly.

    Pretraining's rows: status ok, or unmapped under the index's profile but complete under `profile`.
    """
    frame = read_index(small_index)
    from modan_dicom.vocab import Vocabulary

    vocab = Vocabulary.load(profile)
    expected = {}
    for row in frame.itertuples():
        labelled = isinstance(row.modality, str) and isinstance(row.anatomy, str)
        if row.status not in ("ok", "unmapped") or not labelled:
            continue
        if vocab.project_modality(row.modality) and vocab.project_anatomy(row.anatomy):
            expected[row.file_key] = (row.modality, row.anatomy)
    return expected


# ---- embed ----------------------------------------------------------------------------------------


def test_features_equal_a_direct_encoder_forward(embedded: Path, small_index: Path, tiny_encoder: Path) -> None:
    data = read_embeddings(embedded)
    rows, features = data.of("tiny")
    root = Path(read_index_metadata(small_index)["source"])
    paths = read_index(small_index).set_index("file_key")["path"]  # the local file's paths
    images = torch.stack([resize_unit_image(load_image(root / paths[k]), SIZE) for k in rows["file_key"]])
    net = load_encoder(tiny_encoder).eval()
    with torch.no_grad():
        direct = net(images.float() / 255.0).numpy()
    assert features.shape == (len(rows), 512) and features.dtype == np.float32
    assert np.allclose(features, direct, atol=1e-5, rtol=1e-5)
    assert np.abs(features).max() > 1e-3  # not a degenerate all-zero output


def test_one_row_per_image_and_encoder(embedded: Path, small_index: Path) -> None:
    expected = _expected_rows(small_index)
    table = pq.read_table(embedded)
    assert table.column_names == ["file_key", "instance_key", "patient_key", "modality", "anatomy", "pair", "encoder",
                                  "features"]
    # no path (the export names some files by SOP Instance UID), no folder in the file: shareable as the index is
    text = "\n".join(map(str, table.drop(["features"]).to_pylist())) + str(table.schema.metadata)
    raw = embedded.read_bytes()
    for path in read_index(small_index)["path"]:
        assert path not in text and path.encode() not in raw, path
        stem = Path(path).stem
        assert len(stem) < 12 or stem not in text, stem  # a UID file name
    assert str(small_index.parent) not in text
    kind = table.schema.field("features").type
    assert pa.types.is_fixed_size_list(kind) and kind.list_size == 512 and kind.value_type == pa.float32()
    data = read_embeddings(embedded)
    assert data.encoders == ["tiny", "scratch"]
    assert len(data.frame) == 2 * len(expected)
    assert not data.frame.duplicated(["file_key", "encoder"]).any()
    for name in data.encoders:
        rows, _ = data.of(name)
        assert set(rows["file_key"]) == set(expected)
        assert rows["patient_key"].notna().all() and rows["instance_key"].str.startswith("ins-").all()
    # both encoders see the images in the same (index) order
    assert data.of("tiny")[0]["file_key"].tolist() == data.of("scratch")[0]["file_key"].tolist()
    meta = read_embeddings_meta(embedded)
    assert meta["n_images"] == len(expected) and meta["feature_dim"] == 512 and meta["image_size"] == SIZE
    assert [e["name"] for e in meta["encoders"]] == ["tiny", "scratch"]
    assert meta["encoders"][0]["method"] == "test" and meta["encoders"][1]["kind"] == "scratch"


# known projections in the radimagenet profile (vocab/profiles), written out by hand
PROJECTED = {("CT", "chest"): ("CT", "lung"), ("MR", "cervical_spine"): ("MR", "spine"),
             ("MR", "foot"): ("MR", "ankle_foot"), ("MR", "knee"): ("MR", "knee")}


def test_pairs_are_projected_to_the_profile(embedded: Path, small_index: Path) -> None:
    expected = _expected_rows(small_index)
    rows, _ = read_embeddings(embedded).of("tiny")
    assert (rows["pair"] == rows["modality"] + "/" + rows["anatomy"]).all()
    seen = set()
    for path, modality, anatomy in zip(rows["file_key"], rows["modality"], rows["anatomy"]):
        raw = expected[path]
        if raw in PROJECTED:
            assert (modality, anatomy) == PROJECTED[raw], path
            seen.add(raw)
    assert len(seen) >= 2  # the export exercises real projections
    assert "CT/chest" not in set(rows["pair"])


def test_limit_is_stratified_and_full_profile_keeps_specific_terms(
    small_index: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    out = embed(small_index, {"tiny": tiny_encoder}, tmp_path / "e.parquet", image_size=SIZE, device="cpu",
                profile="full", limit=12, seed=1, workers=1)
    rows, features = read_embeddings(out).of("tiny")
    assert len(rows) == 12 and features.shape == (12, 512)
    expected = _expected_rows(small_index, "full")
    assert set(rows["file_key"]) <= set(expected)
    assert len(expected) > len(_expected_rows(small_index))  # the full profile has room for more rows
    # the full profile keeps the most specific ids: the pair is the index's own modality/anatomy
    for path, pair in zip(rows["file_key"], rows["pair"]):
        assert pair == "/".join(expected[path])
    # stratified: one image per pair while the limit allows (the largest pairs first when it does not)
    assert rows["pair"].nunique() == min(12, len(set(expected.values())))


def test_stratified_sample() -> None:
    groups = ["a"] * 60 + ["b"] * 30 + ["c"] * 9 + ["d"]
    picked = stratified_sample(groups, 20, seed=0)
    assert len(picked) == 20 and len(set(picked)) == 20 and list(picked) == sorted(picked)
    counts = {g: sum(groups[i] == g for i in picked) for g in "abcd"}
    assert counts["d"] == 1 and counts["a"] + counts["b"] + counts["c"] == 19
    assert abs(counts["a"] - 2 * counts["b"]) <= 2 and counts["c"] >= 1
    assert np.array_equal(picked, stratified_sample(groups, 20, seed=0))
    assert not np.array_equal(picked, stratified_sample(groups, 20, seed=1))
    assert len(stratified_sample(groups, 3, seed=0)) == 3
    assert np.array_equal(stratified_sample(groups, 500), np.arange(100))
    with pytest.raises(ConfigError):
        stratified_sample(groups, 0)


def test_scratch_is_seeded(small_index: Path, tmp_path: Path) -> None:
    specs = {"a": "scratch", "b": "scratch", "c": "scratch:5"}
    first = read_embeddings(embed(small_index, specs, tmp_path / "1.parquet", image_size=SIZE, device="cpu",
                                  limit=6, seed=3, workers=1))
    assert np.array_equal(first.of("a")[1], first.of("b")[1])
    assert not np.allclose(first.of("a")[1], first.of("c")[1])
    # another run, same seed: the same features; and the caller's global random stream is left alone
    torch.manual_seed(99)
    before = torch.rand(1)
    torch.manual_seed(99)
    second = read_embeddings(embed(small_index, {"a": "scratch"}, tmp_path / "2.parquet", image_size=SIZE,
                                   device="cpu", limit=6, seed=3, workers=1))
    assert torch.equal(torch.rand(1), before)
    assert np.array_equal(first.of("a")[1], second.of("a")[1])
    assert first.of("a")[0]["file_key"].tolist() == second.of("a")[0]["file_key"].tolist()


def test_imagenet_init(small_index: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "resnet18-f37072fd.pth"
    with pytest.raises(SourceError) as info:
        embed(small_index, {"imagenet": "imagenet"}, tmp_path / "e.parquet", imagenet_weights=missing, device="cpu")
    assert "ImageNet weights not found" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "e.parquet").exists()
    # a stand-in with torchvision's layout (random values): conv1 becomes the RGB kernels summed
    torch.manual_seed(0)
    weights = tmp_path / "resnet18-f37072fd.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    out = embed(small_index, {"imagenet": "imagenet"}, tmp_path / "e.parquet", imagenet_weights=tmp_path,
                image_size=SIZE, device="cpu", limit=4, workers=1)
    data = read_embeddings(out)
    rows, features = data.of("imagenet")
    rgb = torchvision.models.resnet18()
    rgb.load_state_dict(torch.load(weights, weights_only=True))
    rgb.fc = torch.nn.Identity()
    root = resolve_index_root(small_index)
    paths = read_index(small_index).set_index("file_key")["path"]
    grey = torch.stack([resize_unit_image(load_image(root / paths[k]), SIZE) for k in rows["file_key"]]).float() / 255.0
    with torch.no_grad():
        direct = rgb.eval()(grey.expand(-1, 3, -1, -1)).numpy()  # the grey image on three channels
    assert np.allclose(features, direct, atol=1e-4)


def test_bad_encoder_inputs(small_index: Path, tmp_path: Path) -> None:
    not_encoder = tmp_path / "junk.pt"
    torch.save({"weights": [1, 2, 3]}, not_encoder)
    text_file = tmp_path / "notes.pt"
    text_file.write_text("hello")
    for spec in (not_encoder, text_file, tmp_path / "missing.pt"):
        with pytest.raises(SourceError):
            embed(small_index, {"x": spec}, tmp_path / "e.parquet", device="cpu")
    with pytest.raises(ConfigError):
        embed(small_index, {}, tmp_path / "e.parquet")
    with pytest.raises(SourceError):
        embed(tmp_path / "no-index.parquet", {"s": "scratch"}, tmp_path / "e.parquet")
    assert not (tmp_path / "e.parquet").exists()


def test_parse_init() -> None:
    assert parse_init("mulsupcon=runs/a/encoder.pt") == ("mulsupcon", "runs/a/encoder.pt")
    assert parse_init("odd=dir/with=sign.pt") == ("odd", "dir/with=sign.pt")
    assert parse_init("scratch") == ("scratch", "scratch")
    assert parse_init("scratch:7") == ("scratch:7", "scratch:7")
    assert parse_init("imagenet") == ("imagenet", "imagenet")
    assert parse_init("random=scratch:3") == ("random", "scratch:3")
    for bad in ("", "encoder.pt", "=a.pt", "name=", "scratch:x"):
        with pytest.raises(ConfigError):
            parse_init(bad)
    assert list(parse_inits(["b=x.pt", "scratch", "a=y.pt"])) == ["b", "scratch", "a"]
    with pytest.raises(ConfigError):
        parse_inits(["a=x.pt", "a=y.pt"])


# ---- visualize ------------------------------------------------------------------------------------


def test_pair_colors_are_fixed() -> None:
    pairs = ["MR/knee", "CT/lung", "US/thyroid", "CT/abdomen", "MR/knee"]
    mapping = pair_colors(pairs)
    assert list(mapping) == ["CT/abdomen", "CT/lung", "MR/knee", "US/thyroid"]
    assert mapping == pair_colors(reversed(pairs))  # order and counts do not matter
    assert len(set(mapping.values())) == 4
    many = [f"M{i:02d}/a" for i in range(70)]
    colours = pair_colors(many)
    assert len(set(colours.values())) == 70 and colours == pair_colors(sorted(many, reverse=True))
    assert all(len(c) == 4 and all(0.0 <= v <= 1.0 for v in c) for c in colours.values())


def test_umap_is_deterministic_and_guards_small_inputs() -> None:
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(0, 1, (20, 16)), rng.normal(6, 1, (20, 16))]).astype(np.float32)
    first = umap_coordinates(features, n_neighbors=10, seed=4)
    assert first.shape == (40, 2)
    assert np.array_equal(first, umap_coordinates(features, n_neighbors=10, seed=4))
    assert not np.array_equal(first, umap_coordinates(features, n_neighbors=10, seed=5))
    # the two blobs stay apart: every point is nearer its own blob's centre
    centres = first[:20].mean(0), first[20:].mean(0)
    near_first = np.linalg.norm(first - centres[0], axis=1) < np.linalg.norm(first - centres[1], axis=1)
    assert near_first[:20].all() and not near_first[20:].any()
    for n in (1, 2, 3, 5):  # n_neighbors 15 > n − 1
        assert umap_coordinates(features[:n], seed=0).shape == (n, 2)


def test_figure_uses_one_colour_mapping_for_all_panels() -> None:
    rng = np.random.default_rng(1)
    pairs_a = ["CT/lung"] * 5 + ["MR/knee"] * 4 + ["US/thyroid"] * 3
    pairs_b = ["MR/knee"] * 3 + ["CT/brain"] * 4  # another panel with a different set of pairs
    panels = [("a", rng.normal(size=(12, 2)), pairs_a), ("b", rng.normal(size=(7, 2)), pairs_b)]
    figure = umap_figure(panels, seed=0)
    mapping = pair_colors(pairs_a + pairs_b)
    axes = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["a", "b"]
    for ax, (_, coordinates, pairs) in zip(axes, panels):
        assert not ax.get_xticks().size and not ax.get_yticks().size
        (points,) = ax.collections
        offsets, colours = points.get_offsets(), points.get_facecolors()
        assert len(offsets) == len(pairs)
        for xy, colour in zip(offsets, colours):
            i = int(np.flatnonzero((coordinates == np.asarray(xy)).all(axis=1))[0])
            assert np.allclose(colour[:3], mapping[pairs[i]][:3])
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == sorted(set(pairs_a + pairs_b))


def test_visualize_writes_a_png(embedded: Path, tmp_path: Path) -> None:
    from PIL import Image

    out = visualize(embedded, tmp_path / "fig" / "umap.png", n_neighbors=10, seed=0)
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > image.height > 200
    one = visualize(embedded, tmp_path / "one.png", encoders=["scratch"], seed=0)
    with Image.open(one) as image:
        assert image.width < Image.open(out).width
    with pytest.raises(ConfigError):
        visualize(embedded, tmp_path / "x.png", encoders=["nope"])
    with pytest.raises(SourceError):
        visualize(tmp_path / "missing.parquet", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# ---- CLI ------------------------------------------------------------------------------------------


def test_cli_embed_and_visualize(small_index: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "e.parquet"
    result = runner.invoke(main, ["embed", "--index", str(small_index), "--init", f"tiny={tiny_encoder}",
                                  "--init", "scratch", "-o", str(out), "--image-size", str(SIZE),
                                  "--limit", "10", "--device", "cpu", "--workers", "1"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "10 images × 2 encoders" in result.stderr
    assert read_embeddings(out).encoders == ["tiny", "scratch"]
    png = tmp_path / "umap.png"
    result = runner.invoke(main, ["visualize", str(out), "-o", str(png), "--n-neighbors", "5", "--seed", "1"])
    assert result.exit_code == 0, result.output + result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, words",
    [
        (["embed", "--index", "{tmp}/none.parquet", "--init", "scratch", "-o", "{tmp}/e.parquet"], "no such index"),
        (["embed", "--index", "{index}", "--init", "encoder.pt", "-o", "{tmp}/e.parquet"], "malformed --init"),
        (["embed", "--index", "{index}", "--init", "a={tmp}/junk.pt", "-o", "{tmp}/e.parquet"], "not an encoder"),
        (["embed", "--index", "{index}", "--init", "imagenet", "--imagenet-weights", "{tmp}/w.pth",
          "-o", "{tmp}/e.parquet"], "ImageNet weights not found"),
        (["visualize", "{tmp}/none.parquet", "-o", "{tmp}/u.png"], "no such embeddings file"),
        (["visualize", "{index}", "-o", "{tmp}/u.png"], "not a modan-dicom embeddings file"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(small_index: Path, tmp_path: Path, args: list[str], words: str) -> None:
    torch.save({"weights": [1, 2, 3]}, tmp_path / "junk.pt")
    argv = [a.format(tmp=tmp_path, index=small_index) for a in args]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2, result.output + result.stderr
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "e.parquet").exists() and not (tmp_path / "u.png").exists()

"""Datasets: stratified split and subsample, ImageFolder decoding of awkward files, prepare's
handling of corrupt files (skip with a count, or a clear error), and a store that keeps only the
file list (``data.pixels: folder``): the same pixels and features as a store of them."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from digit.data import (
    CorruptImageError,
    DataError,
    decode_image,
    imagefolder,
    stratified_split,
    stratified_subsample,
)

ROOT = Path(__file__).resolve().parents[1]


def test_stratified_split_and_subsample():
    labels = np.repeat(np.arange(10), 50)  # sorted by label, like mnist_data()
    is_val = stratified_split(labels, 0.2, seed=0)
    assert is_val.sum() == 100
    assert all(is_val[labels == c].sum() == 10 for c in range(10))
    assert np.array_equal(is_val, stratified_split(labels, 0.2, seed=0))
    assert not np.array_equal(is_val, stratified_split(labels, 0.2, seed=1))
    idx = stratified_subsample(labels, 100, seed=0)
    assert len(idx) == 100 and len(set(idx)) == 100
    assert np.bincount(labels[idx], minlength=10).tolist() == [10] * 10


def make_folder(root: Path) -> None:
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(root / "cat/rgb.jpg")
    Image.fromarray(rng.integers(0, 255, (50, 50), dtype=np.uint8)).save(root / "cat/gray.png")
    Image.fromarray(rng.integers(0, 255, (20, 20, 4), dtype=np.uint8), "RGBA").save(
        root / "dog/a.png"
    )
    Image.fromarray(rng.integers(0, 255, (64, 48, 3), dtype=np.uint8)).convert("CMYK").save(
        root / "dog/cmyk.jpg"
    )
    (root / "dog/notes.txt").write_text("not an image")  # ignored: not an image suffix
    (root / "dog/broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")


def test_imagefolder_decodes_mixed_modes_and_small_images(tmp_path):
    make_folder(tmp_path)
    ds = imagefolder(tmp_path, image_size=32)
    assert ds.class_names == ["cat", "dog"]
    assert len(ds) == 5  # the .txt is not listed
    for i, src in enumerate(ds.sources):
        if src.endswith("broken.jpg"):
            with pytest.raises(CorruptImageError, match="broken.jpg"):
                ds.load_one(i)
        else:
            img = ds.load_one(i)
            assert img.shape == (32, 32, 3) and img.dtype == np.uint8


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        imagefolder(tmp_path / "missing", 32)
    with pytest.raises(DataError, match="no class folders"):
        imagefolder(tmp_path, 32)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "a/x.png")
    with pytest.raises(DataError, match="class folder.* with no images: b"):
        imagefolder(tmp_path, 32)


def test_decode_center_crop_keeps_aspect(tmp_path):
    img = np.zeros((20, 40, 3), dtype=np.uint8)
    img[:, 10:30] = 255  # the center square is white
    Image.fromarray(img).save(tmp_path / "wide.png")
    out = decode_image(tmp_path / "wide.png", 20)
    assert out.shape == (20, 20, 3) and out.mean() > 240


def run_prepare(
    tmp_path: Path, on_corrupt: str, pixels: str = "store", out: str = "images.zarr"
) -> subprocess.CompletedProcess:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(
        dataset="imagefolder",
        root=str(tmp_path / "imgs"),
        image_size=16,
        channels=3,
        on_corrupt=on_corrupt,
        val_fraction=0.5,
        chunk_images=2,
        pixels=pixels,
    )
    params["device"] = "cpu"
    params["extract"]["batch_size"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.stages.prepare",
            "--out",
            str(tmp_path / out),
            "--metrics",
            str(tmp_path / "prepare.json"),
            "--params",
            str(tmp_path / "params.yaml"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_prepare_skips_or_stops_on_corrupt_files(tmp_path):
    import zarr

    make_folder(tmp_path / "imgs")
    proc = run_prepare(tmp_path, "skip")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "prepare.json").read_text())
    assert summary["n_images"] == 4 and summary["n_corrupt_skipped"] == 1
    assert summary["corrupt_files"][0].endswith("broken.jpg")
    g = zarr.open_group(str(tmp_path / "images.zarr"), mode="r")
    assert g["images"].shape == (4, 16, 16, 3) and g["labels"][:].tolist() == [0, 0, 1, 1]

    proc = run_prepare(tmp_path, "error")
    assert proc.returncode != 0
    assert "broken.jpg" in proc.stderr and "data.on_corrupt" in proc.stderr
    assert "Traceback" not in proc.stderr
    # The failed run left nothing half-written: the previous output is intact, no temporaries.
    assert g["images"].shape == (4, 16, 16, 3)
    assert not list(tmp_path.glob(".images.zarr.tmp-*"))


def test_a_folder_store_reads_the_same_pixels_and_features(tmp_path):
    """pixels: folder keeps the file list only; every way a stage indexes the pixels, and extract
    itself, gives what the store of decoded pixels gives."""
    import torch
    import zarr

    from digit.encoders import build_encoder
    from pipeline.checks import load
    from pipeline.encoder_files import save_encoder
    from pipeline.images import load_images, pixel_source
    from pipeline.stages import extract
    from pipeline.stages.ssl import encoder_kwargs

    make_folder(tmp_path / "imgs")
    for i in range(3):  # a few more, so the store has blocks and a val split to index
        Image.fromarray(np.full((30, 20, 3), 40 * i, np.uint8)).save(
            tmp_path / f"imgs/cat/f{i}.png"
        )
    assert run_prepare(tmp_path, "skip", "store", "stored.zarr").returncode == 0
    proc = run_prepare(tmp_path, "skip", "folder", "listed.zarr")
    assert proc.returncode == 0, proc.stderr
    stored, listed = (
        pixel_source(str(tmp_path / "stored.zarr")),
        pixel_source(str(tmp_path / "listed.zarr")),
    )
    assert listed.shape == stored.shape == (7, 16, 16, 3)  # broken.jpg skipped in both
    pixels = stored[:]  # numpy's indexing is the contract (load_images holds a store's in memory)
    for key in (3, slice(None), slice(1, 6, 2), np.array([6, 0, 2]), np.arange(7) % 2 == 0):
        assert np.array_equal(listed[key], pixels[key]), key
    rows = np.array([1, 4])
    assert np.array_equal(
        listed.get_orthogonal_selection((rows,)), stored.get_orthogonal_selection((rows,))
    )
    a, b = load_images(str(tmp_path / "stored.zarr")), load_images(str(tmp_path / "listed.zarr"))
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.is_val, b.is_val)
    assert np.array_equal(a.images[a.val], b.images[b.val])
    size = lambda p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file())  # noqa: E731
    assert size(tmp_path / "listed.zarr") < size(tmp_path / "stored.zarr")

    params = load(tmp_path / "params.yaml")
    torch.manual_seed(0)
    kwargs = encoder_kwargs(params)
    save_encoder(tmp_path / "enc.pt", build_encoder("cnn_small", **kwargs), kwargs)
    feats = {}
    for name in ("stored", "listed"):
        out = str(tmp_path / f"feats_{name}.zarr")
        extract.run(params, str(tmp_path / f"{name}.zarr"), str(tmp_path / "enc.pt"), out)
        feats[name] = zarr.open_group(out, mode="r")["feats"][:]
    assert np.array_equal(feats["listed"], feats["stored"])

    # A file changed after prepare is refused by name, not read as other pixels.
    changed = tmp_path / "imgs/cat/f1.png"
    Image.fromarray(np.zeros((30, 20, 3), np.uint8)).save(changed)
    with pytest.raises(DataError, match=r"f1\.png: changed since prepare"):
        listed[:]


def test_a_folder_store_needs_an_image_folder():
    from pipeline.checks import validate
    from pipeline.params import ParamsError

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"]["pixels"] = "folder"
    with pytest.raises(
        ParamsError, match="data.pixels: 'folder' decodes the files under data.root"
    ):
        validate(raw)

"""Datasets: stratified split and subsample, ImageFolder decoding of awkward files, prepare's
handling of corrupt files (skip with a count, or a clear error)."""

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


def run_prepare(tmp_path: Path, on_corrupt: str) -> subprocess.CompletedProcess:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(
        dataset="imagefolder",
        root=str(tmp_path / "imgs"),
        image_size=16,
        channels=3,
        on_corrupt=on_corrupt,
        val_fraction=0.5,
        chunk_images=2,
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.stages.prepare",
            "--out",
            str(tmp_path / "images.zarr"),
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

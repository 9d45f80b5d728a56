"""The feature store outside the project (extract.store): a second local path, file:// and
memory:// hold the features, the dvc.yaml path a pointer that codebook and tokenize follow, with the
same tokens as the default store; a store overwritten or missing is refused. A store of the K-Means
sample only (extract.keep): tokenize re-encodes every image and gets the same tokens."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from digit.encoders import build_encoder
from pipeline import io
from pipeline.checks import validate
from pipeline.encoder_files import save_encoder
from pipeline.stage import StageError
from pipeline.stages import extract, kmeans, tokenize
from pipeline.stages.ssl import encoder_kwargs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """40 random 28-px images and a random cnn_small encoder, as prepare and ssl write them."""
    tmp = tmp_path_factory.mktemp("inputs")
    params = make_params(None)
    rng = np.random.default_rng(0)
    with io.zarr_group_writer(tmp / "images.zarr") as g:
        io.create_array(g, "images", (40, 28, 28, 1), 16, "uint8")[:] = rng.integers(
            0, 256, (40, 28, 28, 1), dtype=np.uint8
        )
        io.create_array(g, "labels", (40,), 64, "int64")[:] = np.arange(40) % 2
        io.create_array(g, "is_val", (40,), 64, "bool")[:] = np.arange(40) >= 32
        g.attrs.update(class_names=["a", "b"])
    torch.manual_seed(0)
    kwargs = encoder_kwargs(params)
    save_encoder(tmp / "encoder.pt", build_encoder("cnn_small", **kwargs), kwargs)
    return {"images": str(tmp / "images.zarr"), "encoder": str(tmp / "encoder.pt")}


def make_params(store: str | None, keep="all", precision="fp32"):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["device"] = "cpu"
    raw["data"]["max_images"] = 40
    raw["extract"].update(store=store, batch_size=16, keep=keep, precision=precision)
    raw["kmeans"].update(ks=[8], main_k=8, niter=3)
    return validate(raw)


def pipeline_tokens(params, inputs, work) -> tuple[np.ndarray, dict]:
    """extract -> codebook -> tokenize, as dvc.yaml chains them, in this process."""
    feats = str(work / "features" / "feats.zarr")
    info = extract.run(params, inputs["images"], inputs["encoder"], feats)
    kmeans.run(params, 8, inputs["images"], feats, str(work / "k8.npy"), str(work / "k8.json"))
    tokens = str(work / "tokens.zarr")
    tokenize.run(
        params, 8, feats, str(work / "k8.npy"), tokens, inputs["encoder"], inputs["images"]
    )
    info["feats"] = io.open_group(feats)["feats"][:]  # through the pointer, as tokenize reads
    return io.open_group(work / "tokens.zarr")["tokens"][:], info


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    torch.set_num_threads(1)
    return pipeline_tokens(make_params(None), inputs, tmp_path_factory.mktemp("ref"))


@pytest.mark.parametrize("kind", ["path", "file", "memory"])
def test_features_in_another_store(tmp_path, inputs, reference, kind):
    elsewhere = tmp_path / "scratch" / "feats.zarr"
    store = {
        "path": str(elsewhere),  # a second local disk
        "file": f"file://{elsewhere}",
        "memory": f"memory://digit-test-{tmp_path.name}/feats.zarr",  # read-after-write, one process
    }[kind]
    work = tmp_path / "project"
    tokens, info = pipeline_tokens(make_params(store), inputs, work)
    ref_tokens, ref_info = reference
    assert np.array_equal(info["feats"], ref_info["feats"])  # the same features ...
    assert np.array_equal(tokens, ref_tokens)  # ... and the same tokens downstream
    pointer = work / "features" / "feats.zarr"
    assert [p.name for p in pointer.iterdir()] == ["zarr.json"]  # DVC caches a few hundred bytes
    assert io.open_group(pointer).attrs[io.DIGEST_KEY] == info["sha256"]
    if kind != "memory":
        assert io.open_group(elsewhere)["feats"].shape == (40, 49, 64)


def test_overwritten_or_missing_store_is_refused(tmp_path, inputs):
    store = tmp_path / "scratch" / "feats.zarr"
    params = make_params(str(store))
    pointer = tmp_path / "feats.zarr"
    extract.run(params, inputs["images"], inputs["encoder"], str(pointer))
    other = tmp_path / "other.zarr"  # another run's pointer to the same store, other content
    with io.zarr_group_writer(store) as g:
        g.attrs[io.DIGEST_KEY] = "0" * 64
    with pytest.raises(FileNotFoundError, match="does not hold the content this pointer records"):
        io.open_group(pointer)
    io.write_pointer(other, f"file://{tmp_path}/gone.zarr", "0" * 64)
    with pytest.raises(FileNotFoundError, match="gone.zarr, which is not there"):
        io.open_group(other)


def test_a_store_of_the_kmeans_sample_gives_the_same_tokens(tmp_path, inputs, reference):
    """keep 32 = the train images (K-Means samples them all at K=8): the features of the 8 val
    images are not stored, tokenize streams every image through the encoder again."""
    params = make_params(None, keep=32)
    tokens, info = pipeline_tokens(params, inputs, tmp_path)
    ref_tokens, ref_info = reference
    stored = io.open_group(tmp_path / "features" / "feats.zarr")
    assert info["n"] == 32 and stored["feats"].shape == (32, 49, 64)
    assert np.array_equal(io.stored_rows(stored), np.arange(32))  # the train rows
    assert np.array_equal(info["feats"], ref_info["feats"][:32])  # the same bytes for those
    assert np.array_equal(tokens, ref_tokens)  # and, re-encoded, the same tokens for all 40

    from pipeline.stages import encoder_eval

    metrics = tmp_path / "encoder.json"
    random_out = tmp_path / "random.pt"
    torch.manual_seed(1)
    kwargs = encoder_kwargs(params)
    save_encoder(random_out, build_encoder("cnn_small", **kwargs), kwargs)
    feats = str(tmp_path / "features" / "feats.zarr")
    partial = encoder_eval.run(
        params, inputs["images"], feats, str(random_out), str(metrics), inputs["encoder"]
    )
    ref_dir = tmp_path / "ref"
    extract.run(make_params(None), inputs["images"], inputs["encoder"], str(ref_dir / "f.zarr"))
    full = encoder_eval.run(
        make_params(None), inputs["images"], str(ref_dir / "f.zarr"), str(random_out),
        str(ref_dir / "e.json"), inputs["encoder"],
    )  # fmt: skip
    assert partial["knn_top1"] == full["knn_top1"]  # the encoder evaluated again, same scores


def test_too_small_a_kmeans_sample_names_extract_keep(tmp_path, inputs):
    params = make_params(None, keep=10)  # K=8 x 256 points / 49 tokens = 42 images wanted
    feats = str(tmp_path / "feats.zarr")
    extract.run(params, inputs["images"], inputs["encoder"], feats)
    with pytest.raises(StageError, match=r"extract.keep: 10 images' features are kept, K-Means "):
        kmeans.run(params, 8, inputs["images"], feats, str(tmp_path / "c.npy"), str(tmp_path / "m"))


def test_extraction_under_bf16_autocast(tmp_path, inputs, reference):
    """extract.precision (the imagenet preset's bf16): the encoder runs in bf16, the store keeps
    float16 features close to float32's."""
    feats = str(tmp_path / "feats.zarr")
    extract.run(make_params(None, precision="bf16"), inputs["images"], inputs["encoder"], feats)
    got = io.open_group(feats)["feats"][:].astype(np.float32)
    want = reference[1]["feats"].astype(np.float32)
    assert got.dtype == np.float32 and not np.array_equal(got, want)
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()

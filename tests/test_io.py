"""Zarr round trip, block-by-block streaming, and atomic outputs (a failure leaves nothing)."""

import numpy as np
import pytest
import zarr

from pipeline import io


def test_zarr_round_trip_and_chunked_streaming(tmp_path):
    data = np.random.default_rng(0).normal(size=(103, 5, 4)).astype(np.float16)
    with io.zarr_group_writer(tmp_path / "f.zarr") as g:
        arr = io.create_array(g, "feats", data.shape, chunk_rows=10, dtype="float16")
        for rows in io.iter_blocks(len(data), 20):  # blocks of whole chunks, ragged at the end
            arr[rows] = data[rows]
        g.attrs["grid"] = [1, 5]
    g = io.open_group(tmp_path / "f.zarr")
    assert g["feats"].chunks == (10, 5, 4)
    assert np.array_equal(g["feats"][:], data) and g.attrs["grid"] == [1, 5]


def test_zarr_in_memory_store():
    with io.zarr_group_writer("memory://digit-test") as g:
        g.create_array(name="x", data=np.arange(6))
    assert zarr.open_group("memory://digit-test", mode="r")["x"][:].tolist() == list(range(6))


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.zarr"
    with pytest.raises(RuntimeError, match="killed mid-way"), io.zarr_group_writer(target) as g:
        io.create_array(g, "x", (10, 2), 5, "float32")[:5] = 1
        raise RuntimeError("killed mid-way")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    io.write_json(tmp_path / "m.json", {"a": 1})
    with pytest.raises(RuntimeError, match="killed"), io.atomic_path(tmp_path / "m.json") as tmp:
        tmp.write_text("{half")
        raise RuntimeError("killed while writing")
    assert io.read_json(tmp_path / "m.json") == {"a": 1}


def test_leftovers_of_killed_runs_are_swept(tmp_path):
    (tmp_path / ".out.npy.tmp-deadbeef").write_text("junk from a kill -9")
    io.save_npy(tmp_path / "out.npy", np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy"]

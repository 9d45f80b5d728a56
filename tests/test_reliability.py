"""Issue 7, reliability: real stage subprocesses and the real DVC CLI on copies of the project with
the smoke preset.

1. kill -9 in the middle of extract, kmeans@K and ar@K leaves no output half-written; a re-run
   completes, and ar resumes from its checkpoint to the same weights as an uninterrupted run;
2. a params.yaml mistake stops a stage before any compute: exit != 0, one line naming the key;
3. awkward image folders are skipped with a count or stop with one line, as data.on_corrupt says;
4. a missing weights file stops the first stage, naming the key and the file expected;
5. the chain prepare -> ssl -> extract -> kmeans@8 -> tokenize@8 -> ar@8 run twice with one seed
   gives identical metrics, features, centroids, tokens and weights; another seed differs;
6. two `dvc repro` at once: the second fails fast on DVC's lock, the first finishes.

Exact equality holds at a fixed thread count, so every subprocess here runs one OpenMP thread.
"""

import json
import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, copy_project
from PIL import Image

from pipeline.dag import target
from pipeline.io import KILL_AFTER_RENAME, KILL_BEFORE_RENAME

THREADS = {var: "1" for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
ENV = {**os.environ, **THREADS}
AR = "ar@8-0"
# More steps than the smoke preset so that a kill lands between two checkpoints, not after the end.
CHAIN_PARAMS = {"ar.steps": 40, "ar.checkpoint_every": 10, "ar.eval_every": 20, "ar.log_every": 5}
KILLED = re.compile(r"exited with (-9|137)")  # SIGKILL, seen directly or through the shell
TIMING_KEYS = re.compile(r"seconds|per_second")  # wall-clock figures: the only metrics that vary


def set_params(project: Path, changes: dict) -> None:
    path = project / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = raw
        for key in parents:
            node = node[key]
        node[last] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def dvc_run(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["dvc", *args], cwd=project, env={**ENV, **env}, capture_output=True, text=True
    )


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.tmp-*")) if folder.exists() else []


# ------------------------------------------------------------------ 1 + 5: kills, determinism


class Chain:
    """Project a (seed 0) is killed stage by stage; b (seed 0) and c (seed 1) run the same chain
    uninterrupted in the background meanwhile, to compare with."""

    def __init__(self, base: Path) -> None:
        self.a, self.b, self.c = (copy_project(base / name) for name in "abc")
        for project in (self.a, self.b, self.c):
            set_params(project, CHAIN_PARAMS)
        set_params(self.c, {"seed": 1})
        self.background = {
            p: subprocess.Popen(
                ["dvc", "repro", target(AR)],
                cwd=p,
                env=ENV,
                stdout=open(p / "repro.log", "w"),  # noqa: SIM115 (closed with the process)
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stop() ends dvc and its stage together
            )
            for p in (self.b, self.c)
        }

    def finished(self, project: Path) -> Path:
        rc = self.background[project].wait(timeout=600)
        assert rc == 0, (project / "repro.log").read_text()[-3000:]
        return project

    def stop(self) -> None:
        for proc in self.background.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    chain = Chain(tmp_path_factory.mktemp("chain"))
    yield chain
    chain.stop()


def kill_before_rename(project: Path, stage: str, output: str) -> subprocess.CompletedProcess:
    """`dvc repro stage` whose stage process SIGKILLs itself when `output` is complete under its
    temporary name and not yet renamed (pipeline/io.py): the worst moment for a kill -9."""
    return dvc_run(project, "repro", target(stage), **{KILL_BEFORE_RENAME: Path(output).name})


@pytest.fixture(scope="module")
def extract_killed(chain):
    a = chain.a
    killed = kill_before_rename(a, "extract", "features/feats.zarr")
    after_kill = {
        "out_exists": (a / "features/feats.zarr").exists(),
        "temporaries": temporaries(a / "features"),
        "status": dvc_run(a, "status", target("extract")).stdout,
    }
    rerun = dvc_run(a, "repro", target("extract"))
    return killed, after_kill, rerun


def test_kill_during_extract_leaves_no_half_output(extract_killed, chain):
    killed, after_kill, rerun = extract_killed
    assert killed.returncode != 0 and KILLED.search(killed.stderr), killed.stderr[-2000:]
    assert not after_kill["out_exists"]  # nothing DVC or tokenize could take for a result
    assert [t.startswith(".feats.zarr.tmp-") for t in after_kill["temporaries"]] == [True]
    assert "extract" in after_kill["status"]  # DVC knows the stage did not finish
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert temporaries(chain.a / "features") == []  # the re-run swept the leftover
    import zarr

    feats = zarr.open_group(str(chain.a / "features/feats.zarr"), mode="r")["feats"]
    assert feats.shape[0] == 400 and np.isfinite(feats[:].astype(np.float32)).all()


@pytest.fixture(scope="module")
def kmeans_killed(chain, extract_killed):
    a = chain.a
    killed = kill_before_rename(a, "kmeans@8-0", "centroids/k8_s0.npy")
    after_kill = {
        "out_exists": (a / "centroids/k8_s0.npy").exists(),
        "temporaries": temporaries(a / "centroids"),
        "metrics": (a / "metrics/kmeans_k8_s0.json").exists(),
    }
    rerun = dvc_run(a, "repro", target("kmeans@8-0"))
    return killed, after_kill, rerun


def test_kill_during_kmeans_leaves_no_half_output(kmeans_killed, chain):
    killed, after_kill, rerun = kmeans_killed
    assert killed.returncode != 0 and KILLED.search(killed.stderr), killed.stderr[-2000:]
    assert not after_kill["out_exists"] and not after_kill["metrics"]
    assert [t.startswith(".k8_s0.npy.tmp-") for t in after_kill["temporaries"]] == [True]
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert temporaries(chain.a / "centroids") == []
    assert np.load(chain.a / "centroids/k8_s0.npy").shape == (8, 64)


@pytest.fixture(scope="module")
def ar_killed(chain, kmeans_killed):
    """`dvc repro ar@8` (tokenize@8 first) whose stage is killed -9 right after its first training
    checkpoint is in place (a test hook of pipeline/io.py: no race of a poll against the
    training), then `dvc repro ar@8` again."""
    a = chain.a
    checkpoint = a / "checkpoints/ar_k8_s0/last.pt"
    killed = dvc_run(a, "repro", target(AR), **{KILL_AFTER_RENAME: checkpoint.name})
    assert killed.returncode != 0 and KILLED.search(killed.stderr), killed.stderr[-2000:]
    assert checkpoint.exists(), killed.stderr[-3000:]
    from pipeline.io import load_torch

    after_kill = {
        "step": load_torch(checkpoint)["step"],
        "model": (a / "models/ar_k8_s0.pt").exists(),
        "temporaries": temporaries(a / "models"),
        "status": dvc_run(a, "status", target(AR)).stdout,
    }
    rerun = dvc_run(a, "repro", target(AR))
    return after_kill, rerun


def test_kill_during_ar_resumes_from_checkpoint(ar_killed, chain):
    after_kill, rerun = ar_killed
    assert after_kill["step"] == 10  # the first checkpoint, every time
    assert not after_kill["model"] and after_kill["temporaries"] == []
    assert AR in after_kill["status"]
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    out = rerun.stdout + rerun.stderr
    assert f"ar_k8_s0: resuming from step {after_kill['step']} of 40" in out
    assert not (chain.a / "checkpoints/ar_k8_s0").exists()  # removed once the model is written
    assert "up to date" in dvc_run(chain.a, "status", target(AR)).stdout


def arrays(project: Path) -> dict[str, np.ndarray]:
    """What the chain computed, as arrays: features, centroids, tokens and the AR weights."""
    import zarr

    from pipeline.io import load_torch

    out = {
        "feats": zarr.open_group(str(project / "features/feats.zarr"), mode="r")["feats"][:],
        "centroids": np.load(project / "centroids/k8_s0.npy"),
        "tokens": zarr.open_group(str(project / "tokens/disc_k8_s0.zarr"), mode="r")["tokens"][:],
    }
    weights = load_torch(project / "models/ar_k8_s0.pt")["state_dict"]
    out.update({f"ar/{k}": v.numpy() for k, v in weights.items()})
    return out


def metrics(project: Path) -> dict[str, dict]:
    files = [*project.glob("metrics/*.json"), project / "dvclive/ar_k8_s0/metrics.json"]
    return {str(f.relative_to(project)): json.loads(f.read_text()) for f in files}


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not TIMING_KEYS.search(k)}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def test_same_seed_identical_killed_or_not_other_seed_differs(chain, ar_killed):
    a, b, c = chain.a, chain.finished(chain.b), chain.finished(chain.c)
    ma, mb, mc = metrics(a), metrics(b), metrics(c)
    assert set(ma) == set(mb) == set(mc) and len(ma) == 5
    for name in ma:
        text_a, text_b = (a / name).read_text(), (b / name).read_text()
        if TIMING_KEYS.search(text_a):  # ssl.json, ar_k8.json: equal but for wall-clock figures
            assert without_timings(ma[name]) == without_timings(mb[name]), name
        else:
            assert text_a == text_b, name  # byte-identical
    # a was killed in extract, kmeans@8 and ar@8 and re-run: the same numbers as b, bit for bit.
    xa, xb, xc = arrays(a), arrays(b), arrays(c)
    for name in xa:
        assert xa[name].dtype == xb[name].dtype and np.array_equal(xa[name], xb[name]), name
    assert (a / "centroids/k8_s0.npy").read_bytes() == (b / "centroids/k8_s0.npy").read_bytes()
    # Another seed: another subsample and split, encoder, clustering and model.
    for name in ("metrics/ssl.json", "metrics/kmeans_k8_s0.json", "metrics/ar_k8_s0.json"):
        assert without_timings(ma[name]) != without_timings(mc[name]), name
    for name in ("feats", "centroids", "tokens"):
        assert not np.array_equal(xa[name], xc[name]), name
    ar = [name for name in xa if name.startswith("ar/")]
    assert not all(np.array_equal(xa[name], xc[name]) for name in ar)


# ------------------------------------------------------------------------ 6: concurrent repro


HOLD_STAGE = """
  hold:
    cmd: echo running > started.fifo && cat release.fifo > held.txt
    outs: [held.txt]
"""


def test_two_repro_at_once_second_fails_on_the_lock(tmp_path):
    """While one `dvc repro` runs a stage, a second one stops on DVC's lock and runs nothing.

    Deterministic: the first repro's stage announces itself through a named pipe and then blocks on
    another until the test releases it, so the second repro always meets a running stage (an
    earlier version raced a poll of DVC's lock file against a quick stage)."""
    project = copy_project(tmp_path / "p")
    with open(project / "dvc.yaml", "a") as f:
        f.write(HOLD_STAGE)
    for name in ("started.fifo", "release.fifo"):
        os.mkfifo(project / name)
    first = subprocess.Popen(
        ["dvc", "repro", "hold"], cwd=project, env=ENV, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        # Readable once the stage has written (an event); the timeout only bounds a failure.
        started = os.open(project / "started.fifo", os.O_RDONLY | os.O_NONBLOCK)
        ready, _, _ = select.select([started], [], [], 300)
        said = os.read(started, 64) if ready else b""
        os.close(started)
        assert said.strip() == b"running", first.stdout.read() if first.poll() is not None else ""
        second = subprocess.run(
            ["dvc", "repro", "hold"], cwd=project, env=ENV, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        with open(project / "release.fifo", "w") as release:  # the stage's `cat` reads it
            release.write("go\n")
        out, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert second.returncode != 0, (second.stdout + second.stderr)[-2000:]
    # DVC 3.67: the repo lock while DVC itself works, the per-output lock while a stage runs.
    message = second.stderr
    assert "is busy, it is being blocked by" in message or "Unable to acquire lock" in message
    assert "Running stage" not in second.stdout  # DVC checks its locks before running anything
    assert first.returncode == 0, out[-2000:]
    assert (project / "held.txt").read_text() == "go\n"
    assert "hold" not in dvc_run(project, "status", "hold").stdout  # recorded once, by the first


# ------------------------------------------------------------------- 2 + 4: params, weights


def stage_cli(tmp_path: Path, stage: str, changes: dict, args: list[str]):
    """Run `python -m pipeline.stages.<stage>` on params.yaml with `changes` applied."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    set_params(tmp_path, changes)
    return subprocess.run(
        [sys.executable, "-m", f"pipeline.stages.{stage}", *args, "--params", "params.yaml"],
        cwd=tmp_path,
        env={**ENV, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )


PREPARE = ["--out", "out/images.zarr", "--metrics", "out/prepare.json"]
DINO = {
    "data.dataset": "imagefolder",
    "data.root": "images",
    "data.image_size": 256,  # 16 x 16 tokens for the VQ grid
    "data.channels": 3,
    "encoder.name": "dinov2_vitb14_reg4",
    "encoder.input_size": 224,
}


# Every kind of params mistake, whichever stage the key concerns.
MISTAKES = [
    ({"kmeans.sphrical": True}, "kmeans.sphrical: unknown key"),
    ({"ar.steps": "many"}, "ar.steps: Input should be a valid integer"),
    ({"kmeans.ks": [1, 256]}, "kmeans.ks.0: Input should be greater than or equal to 2"),
    ({"kmeans.ks": [256, 10**6]}, "kmeans.ks: K=1000000 exceeds the ~196000 train"),
    ({"encoder.input_size": 30}, "encoder.input_size: 30 px is not divisible by the patch"),
    (
        {"encoder.name": "resnet50"},
        "encoder.name: unknown encoder 'resnet50'; expected one of cnn_small",
    ),
    ({"data.dataset": "cifar10"}, "data.dataset: Input should be 'mnist5k' or 'imagefolder'"),
    ({"evaluate.extractor": "clip"}, "evaluate.extractor: Input should be 'evalnet' or"),
    (
        {"generate.renderer_causal.top_p": 0},
        "generate.renderer_causal.top_p: Input should be greater",
    ),
    (
        {"generate.token_model.top_p": 1.01},
        "generate.token_model.top_p: Input should be less than or",
    ),
    (
        {"generate.token_model.temperature": -0.5},
        "generate.token_model.temperature: Input should be",
    ),
    (
        {**DINO, "encoder.weights": "weights/dinov2_vitb14_reg4.pth"},
        "encoder.weights: file 'weights/dinov2_vitb14_reg4.pth' not found; expected the "
        "dinov2_vitb14_reg4 checkpoint (.pth or .safetensors)",
    ),
    (
        {"evaluate.extractor": "inception-v3-compat", "evaluate.inception_weights": "inc.pth"},
        "evaluate.inception_weights: file 'inc.pth' not found; expected torch-fidelity's "
        "Inception-v3 weights, a local copy of https://github.com/toshas/torch-fidelity/",
    ),
]


@pytest.mark.parametrize("changes, expected", MISTAKES)
def test_params_mistake_named_in_one_line(tmp_path, changes, expected):
    from pipeline import checks
    from pipeline import params as P

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    set_params(tmp_path, changes)
    with pytest.raises(P.ParamsError) as err:
        checks.load(tmp_path / "params.yaml")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'params.yaml'}: ") and expected in message
    assert "\n" not in message


@pytest.mark.parametrize("changes, expected", [MISTAKES[i] for i in (0, 1, -2, -1)])
def test_params_mistake_stops_prepare_with_one_line(tmp_path, changes, expected):
    """Through the CLI of the first stage: a mistake in a key a later stage reads is caught before
    any data is read (the whole file is validated at the start of every stage)."""
    proc = stage_cli(tmp_path, "prepare", changes, PREPARE)
    assert proc.returncode != 0
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: params.yaml: "), proc.stderr
    assert expected in lines[0]
    assert not (tmp_path / "out").exists()


def test_params_mistake_stops_a_torch_stage_before_compute(tmp_path):
    """The same check at the start of a later stage (its inputs do not even exist)."""
    args = ["--name", "k8", "--conditioning", "none", "--tokens", "t.zarr", "--images", "i.zarr"]
    args += ["--out", "out/ar.pt", "--metrics", "out/m.json", "--checkpoints", "out/ck"]
    proc = stage_cli(
        tmp_path, "ar", {"generate.renderer_causal.temperature": -1}, [*args, "--live", "x"]
    )
    assert proc.returncode != 0
    assert proc.stderr.splitlines() == [
        "error: params.yaml: generate.renderer_causal.temperature: Input should be greater than or "
        "equal to 0 (got -1)"
    ]
    assert not (tmp_path / "out").exists()


def test_weights_present_pass_the_check(tmp_path):
    from pipeline import checks
    from pipeline import params as P

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    set_params(
        tmp_path, {**DINO, "encoder.weights": "w.pth", "evaluate.inception_weights": "i.pth"}
    )
    set_params(tmp_path, {"evaluate.extractor": "inception-v3-compat"})
    with pytest.raises(P.ParamsError, match="encoder.weights: file 'w.pth' not found"):
        checks.load(tmp_path / "params.yaml")
    (tmp_path / "w.pth").write_bytes(b"")  # relative to the folder of params.yaml
    with pytest.raises(P.ParamsError, match="evaluate.inception_weights: file 'i.pth'"):
        checks.load(tmp_path / "params.yaml")
    (tmp_path / "i.pth").write_bytes(b"")
    assert checks.load(tmp_path / "params.yaml").encoder.weights == "w.pth"


# ---------------------------------------------------------------------------- 3: bad data


def awkward_folder(root: Path) -> list[str]:
    """Every kind of file an ImageFolder crawl meets; returns the names that cannot be decoded."""
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                root / cls / f"ok{i}.png"
            )
    Image.fromarray(rng.integers(0, 255, (30, 50), dtype=np.uint8)).save(root / "a/gray.png")
    rgba = rng.integers(0, 255, (20, 20, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(root / "a/rgba.png")
    Image.fromarray(rng.integers(0, 255, (64, 48, 3), dtype=np.uint8)).convert("CMYK").save(
        root / "b/cmyk.jpg"
    )
    Image.fromarray(rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)).save(root / "b/tiny.png")
    (root / "b/notes.txt").write_text("not an image, not listed")
    full = root / "b/full.jpg"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(full, quality=95)
    (root / "b/truncated.jpg").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    (root / "a/text.png").write_text("a text file with an image suffix")
    (root / "a/empty.jpg").write_bytes(b"")
    return ["empty.jpg", "text.png", "truncated.jpg"]


def prepare_on(tmp_path: Path, on_corrupt: str) -> subprocess.CompletedProcess:
    changes = {
        "data.dataset": "imagefolder",
        "data.root": "images",
        "data.image_size": 16,
        "data.channels": 3,
        "data.on_corrupt": on_corrupt,
        "data.val_fraction": 0.25,
        "data.chunk_images": 4,
    }
    return stage_cli(tmp_path, "prepare", changes, PREPARE)


def test_bad_files_skipped_with_a_count(tmp_path):
    bad = awkward_folder(tmp_path / "images")
    proc = prepare_on(tmp_path, "skip")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = json.loads((tmp_path / "out/prepare.json").read_text())
    assert summary["n_corrupt_skipped"] == 3
    assert sorted(Path(f).name for f in summary["corrupt_files"]) == bad
    assert summary["n_images"] == 10 and summary["n_classes"] == 2
    for name in bad:  # and each one named in the log
        assert re.search(rf"WARNING skipping .*{name}: cannot decode image", proc.stderr), name
    import zarr

    images = zarr.open_group(str(tmp_path / "out/images.zarr"), mode="r")["images"]
    assert images.shape == (10, 16, 16, 3)  # grayscale, RGBA, CMYK and 5x7 px all became RGB 16x16


def test_bad_files_stop_with_one_line_when_asked(tmp_path):
    awkward_folder(tmp_path / "images")
    proc = prepare_on(tmp_path, "error")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "cannot decode image" in last
    assert "set data.on_corrupt: skip" in last and "Traceback" not in proc.stderr
    assert not (tmp_path / "out/images.zarr").exists() and temporaries(tmp_path / "out") == []


@pytest.mark.parametrize(
    "layout, expected",
    [
        ({}, "no class folders (expected root/<class>/<image>)"),
        ({"a": ["x.png"], "b": ["notes.txt"]}, "class folder(s) with no images: b"),
        ({"a": ["bad.png"]}, "cannot decode image"),  # on_corrupt: skip, nothing left
    ],
)
def test_unusable_folder_one_line(tmp_path, layout, expected):
    (tmp_path / "images").mkdir()
    for cls, files in layout.items():
        (tmp_path / "images" / cls).mkdir()
        for name in files:
            if name == "x.png":
                Image.new("RGB", (8, 8)).save(tmp_path / "images" / cls / name)
            else:
                (tmp_path / "images" / cls / name).write_text("junk")
    proc = prepare_on(tmp_path, "skip")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "Traceback" not in proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert not (tmp_path / "out/images.zarr").exists()


def test_decompression_bomb_is_a_corrupt_image(tmp_path, monkeypatch):
    from digit.data import CorruptImageError, decode_image

    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 px > 2x the limit: PIL refuses
    with pytest.raises(CorruptImageError, match="big.png: cannot decode image"):
        decode_image(tmp_path / "big.png", 16)

"""The paper-scale preset: `apply imagenet` validates the schema with placeholder paths; the weights
files are checked when a stage loads params.yaml (before any work, naming the key); and DVC plans the
whole paper-scale DAG without running any of it.
"""

import re
from pathlib import Path

import pytest
import yaml
from conftest import copy_project, dvc

from pipeline.checks import load, validate
from pipeline.params import ParamsError


def test_imagenet_preset_plans_the_paper_dag(tmp_path):
    work = copy_project(tmp_path, preset="imagenet")  # runs `python -m pipeline.params apply`
    p = validate(yaml.safe_load((work / "params.yaml").read_text()))
    assert (p.data.dataset, p.data.image_size, p.encoder.name) == (
        "imagefolder",
        256,
        "dinov2_vitb14_reg4",
    )
    assert (p.encoder.input_size, p.encoder.layer, p.kmeans.main_k) == (224, -3, 8192)
    assert p.kmeans.ks == [1024, 4096, 8192] and p.generate.n_samples == 50000
    assert (p.ar.size, p.ar.n_embd, p.evaluate.extractor) == ("base", None, "inception-v3-compat")
    assert (p.extract.keep, p.extract.precision) == (8192, "bf16")  # bounded disk, fast forward
    assert p.data.pixels == "folder"  # no decoded copy of ImageNet
    # Fig. 4(a)'s rows: the paper's ~39M model for 100 epochs; the 732M path row: 200 epochs
    assert (p.encoders_model.n_layer, p.encoders_model.n_embd, p.encoders_model.steps) == (
        10,
        512,
        240000,
    )
    assert p.path.large_steps_factor == 1
    for section in (p.vq, p.ar, p.renderer):
        assert (section.precision, section.tf32) == ("bf16", True)
    assert (p.generate.token_model.top_k, p.generate.token_model_cond.top_k, p.generate.renderer_causal.top_p) == (
        200, 300, 0.8,
    )  # fmt: skip
    for path in (p.data.root, p.encoder.weights, p.evaluate.inception_weights):
        assert not Path(path).exists()  # placeholders: the schema does not need the files
    with pytest.raises(ParamsError, match="encoder.weights: file .* not found"):
        load(work / "params.yaml")  # what every stage does first

    # `--force`: a plain `--dry` stops at the first stage whose inputs an earlier stage would
    # write (treeverse/dvc#9021); on a fresh checkout every stage is due anyway.
    plan = dvc(work, "repro", "--dry", "--force")
    # Stage names without their file (dag/<kind>/dvc.yaml:<name>; pipeline/dag.py keeps them unique)
    planned = [s.split(":")[-1] for s in re.findall(r"Running stage '([^']+)'", plan)]
    stages = [s.split(":")[-1] for s in dvc(work, "stage", "list", "--all", "--name-only").split()]
    assert sorted(planned) == sorted(stages) and len(stages) > 40
    assert {
        "kmeans@1024-0",
        "kmeans@4096-0",
        "kmeans@8192-0",
        "ar@8192-0",
        "generate@8192-0",
    } <= set(planned)
    assert "--k 8192" in plan and "samples/digit_k8192_causal_s0.zarr" in plan
    # Fig. 4(a): every row of the preset's encoder axis gets its whole branch at K=8192.
    rows = ["mae", "mocov3", "ibot", "dino"]
    assert list(p.encoders) == rows and all(p.for_encoder(r).encoder.frozen for r in rows)
    kinds = ["ssl", "extract", "encoder_eval", "kmeans", "tokenize", "ar", "renderer", "generate"]
    branch = {f"{kind}_enc@{row}" for kind in [*kinds, "probe"] for row in rows}
    assert branch <= set(planned)
    assert "tokens/ibot_k8192.zarr" in plan and "samples/dino_k8192_untruncated.zarr" in plan
    # Nothing ran: no output, no lock, no run cache entry.
    assert sorted(x.name for x in work.iterdir()) == [
        ".dvc",
        ".git",
        "dag",
        "digit",
        "dvc.yaml",
        "params.yaml",
        "pipeline",
    ]
    assert not (work / ".dvc" / "cache").exists()
    assert yaml.safe_load((work / "params.yaml").read_text())["ar"]["nproc"] == 8

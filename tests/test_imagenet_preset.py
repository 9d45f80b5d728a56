"""The paper-scale preset: `apply imagenet` validates with placeholder paths (files are checked when
the stage that reads them starts), and DVC plans the whole paper-scale DAG without running any of it.
"""

import re
from pathlib import Path

import yaml
from conftest import copy_project, dvc

from pipeline.params import load


def test_imagenet_preset_plans_the_paper_dag(tmp_path):
    work = copy_project(tmp_path, preset="imagenet")  # runs `python -m pipeline.params apply`
    p = load(work / "params.yaml")
    assert (p.data.dataset, p.data.image_size, p.encoder.name) == (
        "imagefolder",
        256,
        "dinov2_vitb14_reg4",
    )
    assert (p.encoder.input_size, p.encoder.layer, p.codebook.main_k) == (224, -3, 8192)
    assert p.codebook.ks == [1024, 4096, 8192] and p.generate.n_samples == 50000
    assert (p.ar.size, p.ar.n_embd, p.evaluate.extractor) == ("base", None, "inception-v3-compat")
    assert (p.generate.stage1.top_k, p.generate.stage1_cond.top_k, p.generate.stage2_ar.top_p) == (
        200, 300, 0.8,
    )  # fmt: skip
    for path in (p.data.root, p.encoder.weights, p.evaluate.inception_weights):
        assert not Path(path).exists()  # placeholders: validation does not need the files

    # `--force`: a plain `--dry` stops at the first stage whose inputs an earlier stage would
    # write (treeverse/dvc#9021); on a fresh checkout every stage is due anyway.
    plan = dvc(work, "repro", "--dry", "--force")
    planned = re.findall(r"Running stage '([^']+)'", plan)
    stages = dvc(work, "stage", "list", "--name-only").split()
    assert sorted(planned) == sorted(stages) and len(stages) > 40
    assert {"codebook@1024", "codebook@4096", "codebook@8192", "ar@8192", "evaluate_k@8192"} <= set(
        planned
    )
    assert "--k 8192" in plan and "samples/digit_k8192_ar.zarr" in plan
    # Nothing ran: no output, no lock, no run cache entry.
    assert sorted(x.name for x in work.iterdir()) == [
        ".dvc",
        ".git",
        "digit",
        "dvc.yaml",
        "params.yaml",
        "pipeline",
    ]
    assert not (work / ".dvc" / "cache").exists()
    assert yaml.safe_load((work / "params.yaml").read_text())["ar"]["nproc"] == 8

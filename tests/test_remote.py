"""A shared DVC remote on a real S3-compatible server (moto in server mode, started from its CLI):
one clone of the smoke run pushes, a second clone of its git history pulls, and finds nothing to
reproduce; the feature store (extract.store) on the same server through fsspec gives the tokens
of the local store, byte for byte. What a user types is in README.md, "Sharing results"."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import clone_run, dvc, free_port, wait_until

BUCKET = "digit-shared"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "digit-test",
    "AWS_SECRET_ACCESS_KEY": "digit-test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server from its own CLI, with one bucket; its URL. The server is stopped and
    waited for at the end, so nothing is left running."""
    import boto3

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("moto") / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(listening, 60, f"moto server on port {port}")
        with pytest.MonkeyPatch.context() as env:
            for key, value in {**CREDENTIALS, "FSSPEC_S3_ENDPOINT_URL": url}.items():
                env.setenv(key, value)  # DVC and its stages read the environment
            boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
            yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def git(cwd: Path, *args: str) -> None:
    ident = ["-c", "user.name=digit", "-c", "user.email=digit@localhost"]
    subprocess.run(["git", *ident, *args], cwd=cwd, check=True, capture_output=True)


def bucket_keys(url: str, prefix: str) -> list[str]:
    import boto3

    pages = boto3.client("s3", endpoint_url=url).get_paginator("list_objects_v2")
    return [
        o["Key"]
        for page in pages.paginate(Bucket=BUCKET, Prefix=prefix)
        for o in page.get("Contents", [])
    ]


def test_push_from_one_clone_pull_into_another(smoke_run, s3, tmp_path):
    """The first machine commits the run and pushes its DVC cache; the second clones the git
    history, pulls, and is up to date: `dvc status` clean, `dvc repro` runs nothing."""
    first = clone_run(smoke_run, tmp_path / "first")
    dvc(first, "remote", "add", "-d", "shared", f"s3://{BUCKET}/cache")
    dvc(first, "remote", "modify", "shared", "endpointurl", s3)
    git(first, "add", "-A")
    git(first, "commit", "-q", "-m", "smoke run")
    pushed = dvc(first, "push")
    assert "pushed" in pushed, pushed[-2000:]
    assert len(bucket_keys(s3, "cache/")) > 20

    second = tmp_path / "second"
    subprocess.run(["git", "clone", "-q", str(first), str(second)], check=True)
    assert not (second / "models" / "evalnet.pt").exists()  # DVC-cached outputs are not in git
    dvc(second, "pull")
    assert dvc(second, "status").strip().endswith("Data and pipelines are up to date.")
    again = dvc(second, "repro")
    assert "Running stage" not in again, again[-2000:]
    for stage_out in ("models/evalnet.pt", "reports/claims.md"):
        assert (second / stage_out).read_bytes() == (first / stage_out).read_bytes()


def test_feature_store_on_the_bucket(smoke_run, s3, tmp_path):
    """extract.store on the S3 server: DVC re-runs extract (its params changed), which writes the
    features to the bucket and a pointer to dvc.yaml's path; K-Means and tokenize read them from
    there and give the tokens of the local store. The same chain through `dvc repro` as in the
    smoke run; only this K and seed (the rest of the DAG reads the same tokens)."""
    work = clone_run(smoke_run, tmp_path / "work")
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["extract"]["store"] = f"s3://{BUCKET}/features/feats.zarr"
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    k, seed = params["kmeans"]["ks"][0], params["seeds"][0]
    tokens = f"tokens/disc_k{k}_s{seed}.zarr"
    before = {
        p.relative_to(work / tokens): p.read_bytes()
        for p in (work / tokens).rglob("*")
        if p.is_file()
    }
    out = dvc(work, "repro", f"dag/tokenize/dvc.yaml:tokenize@{k}-{seed}")
    assert "Running stage 'dag/extract/dvc.yaml:extract'" in out, out[-2000:]
    assert any(key.endswith("zarr.json") for key in bucket_keys(s3, "features/feats.zarr/"))
    pointer = (work / "features" / "feats.zarr" / "zarr.json").read_text()
    assert f"s3://{BUCKET}/features/feats.zarr" in pointer
    after = {
        p.relative_to(work / tokens): p.read_bytes()
        for p in (work / tokens).rglob("*")
        if p.is_file()
    }
    assert after == before

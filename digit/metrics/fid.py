"""FID / IS / KID / precision-recall through torch-fidelity, with a registry of feature extractors.

The paper reports FID and IS from torch-fidelity's Inception-v3 ("inception-v3-compat", 50k samples
against ImageNet val). That extractor is kept here under the same name, loaded from a local weights
file only (torch-fidelity would otherwise download it, which fails offline); the table of
extractors is `digit.registry.EXTRACTORS`. The small-scale
runs use "evalnet": the project's own classifier (`digit.metrics.evalnet`), registered with
torch-fidelity as a `FeatureExtractorBase`: penultimate features for FID / KID / PRC, logits for
IS. Numbers from different extractors are different protocols; the result dict names the
extractor.

The pure math (`feature_statistics`, `frechet_distance`) sits beside the torch-fidelity entry point
so tests can check one against the other on the very features torch-fidelity used
(`extract_features`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

from digit.images import to_unit_float
from digit.metrics.evalnet import EvalNet
from digit.registry import EVALNET_FIDELITY_NAME, EXTRACTORS, ExtractorSpec


class EvalNetFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity adapter around `EvalNet`, weights from `feature_extractor_weights_path`.

    torch-fidelity builds its extractors from a weights path, so this is the one place in `digit`
    that reads a model file: the evaluation network's, in the format of pipeline/checkpoints.py,
    of which it takes `config` and `state_dict` (strictly, as pipeline's `load_model` does).

    Takes uint8 (B, C, H, W) batches like every torch-fidelity extractor. Grayscale input is
    repeated to 3 channels for a 3-channel net; input whose size differs from the net's training
    size is resized bilinearly (with antialiasing) to it, as Inception resizes to 299.
    """

    def __init__(
        self,
        name: str,
        features_list: list[str],
        feature_extractor_weights_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, features_list)
        _check_weights("evalnet", feature_extractor_weights_path, "feature_extractor_weights_path")
        ckpt = torch.load(feature_extractor_weights_path, map_location="cpu", weights_only=True)
        if ckpt.get("kind") != "evalnet":
            raise ValueError(
                f"{feature_extractor_weights_path}: not an evalnet model file "
                f"(kind={ckpt.get('kind')!r}); the evalnet stage writes one"
            )
        self.net = EvalNet.from_config(ckpt["config"])
        self.net.load_state_dict(ckpt["state_dict"], strict=True)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("features", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 1, 28, 28, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not (torch.is_tensor(x) and x.dtype == torch.uint8 and x.dim() == 4):
            raise ValueError("expecting uint8 (B, C, H, W) images")
        cfg = self.net.cfg
        if x.shape[1] != cfg.in_channels:
            if x.shape[1] == 1 and cfg.in_channels == 3:
                x = x.expand(-1, 3, -1, -1)
            else:
                raise ValueError(f"evalnet takes {cfg.in_channels} channel(s), got {x.shape[1]}")
        xf = to_unit_float(x)  # (B, C, H, W) in [0, 1]
        if xf.shape[-2:] != (cfg.image_size, cfg.image_size):
            size = (cfg.image_size, cfg.image_size)
            xf = F.interpolate(xf, size=size, mode="bilinear", antialias=True, align_corners=False)
        feat, logits = self.net.features(xf)
        out = {"features": feat.float(), "logits": logits.float()}
        return tuple(out[name] for name in self.features_list)


def _register() -> None:
    # torch-fidelity's registry is process-global and refuses a second registration.
    if EVALNET_FIDELITY_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(EVALNET_FIDELITY_NAME, EvalNetFeatureExtractor)


_register()


def _spec(extractor: str) -> ExtractorSpec:
    if extractor not in EXTRACTORS:
        raise KeyError(f"unknown FID feature extractor {extractor!r}; known: {sorted(EXTRACTORS)}")
    return EXTRACTORS[extractor]


def _check_weights(extractor: str, weights_path: str | None, weights_key: str) -> None:
    if weights_path is None or not os.path.isfile(weights_path):
        hint = EXTRACTORS[extractor].weights_hint if extractor in EXTRACTORS else ""
        state = "is not set" if weights_path is None else "does not exist"
        raise FileNotFoundError(
            f"FID feature extractor {extractor!r} needs a local weights file ({hint}), but "
            f"{weights_key}={weights_path!r} {state}. Set {weights_key} to that file "
            "(nothing is downloaded: the runs are offline)."
        )


class _UInt8Images(Dataset):
    """uint8 (N, H, W, C) images served as the uint8 (C, H, W) tensors torch-fidelity takes.

    Views, not copies: a 50k x 256 x 256 x 3 set is 9.8 GB already; only a batch is ever laid out
    channels-first (and grayscale repeated to 3 channels when `channels` is 3).
    """

    def __init__(self, images: np.ndarray | torch.Tensor, channels: int | None) -> None:
        x = images if torch.is_tensor(images) else torch.from_numpy(np.asarray(images))
        if x.dtype != torch.uint8:
            raise ValueError(f"expected uint8 images (N, H, W, C), got dtype {x.dtype}")
        if x.dim() == 3:
            x = x.unsqueeze(-1)
        if x.dim() != 4 or x.shape[-1] not in (1, 3):
            raise ValueError(
                f"expected uint8 images (N, H, W, C) with C in (1, 3), got {tuple(x.shape)}"
            )
        self.x = x.cpu()  # (N, H, W, C)
        self.repeat = channels == 3 and x.shape[-1] == 1

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = self.x[i].permute(2, 0, 1)  # (C, H, W)
        return img.expand(3, -1, -1) if self.repeat else img


def _common_kwargs(
    spec: ExtractorSpec, weights_path: str, device: str | torch.device, batch_size: int, seed: int
) -> dict[str, Any]:
    return dict(
        feature_extractor=spec.fidelity_name,
        feature_extractor_weights_path=weights_path,
        cuda=torch.device(device).type == "cuda",
        batch_size=batch_size,
        save_cpu_ram=True,  # no DataLoader worker processes
        cache=False,  # nothing written under ~/.cache
        rng_seed=seed,
        verbose=False,
    )


def compute_metrics(
    gen: np.ndarray | torch.Tensor,
    ref: np.ndarray | torch.Tensor | None,
    extractor: str = "evalnet",
    weights_path: str | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    *,
    fid: bool = True,
    isc: bool = True,
    kid: bool = True,
    prc: bool = False,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    isc_splits: int = 10,
    seed: int = 2020,
    weights_key: str = "weights_path",
) -> dict[str, Any]:
    """Generated vs reference images -> named metrics, through `torch_fidelity.calculate_metrics`.

    gen, ref: uint8 (N, H, W, C) or (N, H, W); `ref` may be None when only IS is asked for
    (fid=kid=prc=False). IS is of `gen` only. Precision is the fraction of
    generated samples inside the reference manifold, recall the converse (k=3 neighbourhoods).
    `kid_subset_size` is clamped to min(len(gen), len(ref)) (and `kid_subsets` set to 1 when that
    is both sizes: all subsets would be identical), `isc_splits` to len(gen); the values used are
    returned, with the extractor name and set sizes, so a report can state its protocol.
    `seed` drives torch-fidelity's KID subsets and IS split shuffling. `weights_key` only names,
    in the error for a missing file, the setting the caller should fix.
    """
    spec = _spec(extractor)
    _check_weights(extractor, weights_path, weights_key)
    binary = fid or kid or prc
    if not (binary or isc):
        raise ValueError("nothing to compute: fid, isc, kid and prc are all False")
    if binary and ref is None:
        raise ValueError("fid, kid and prc need reference images (ref is None)")
    x1 = _UInt8Images(gen, spec.in_channels)
    x2 = _UInt8Images(ref, spec.in_channels) if binary else None
    n1, n2 = len(x1), (len(x2) if x2 is not None else 0)
    kid_subset_size = min(kid_subset_size, n1, n2)
    if kid_subset_size == n1 == n2:
        kid_subsets = 1  # every subset would be the whole of both sets: one is the same number
    isc_splits = min(isc_splits, n1)
    raw = torch_fidelity.calculate_metrics(
        input1=x1,
        input2=x2,
        fid=fid,
        isc=isc,
        kid=kid,
        prc=prc,
        feature_layer_fid=spec.feature_layer,
        feature_layer_kid=spec.feature_layer,
        feature_layer_prc=spec.feature_layer,
        feature_layer_isc=spec.logits_layer,
        kid_subset_size=kid_subset_size,
        kid_subsets=kid_subsets,
        isc_splits=isc_splits,
        **_common_kwargs(spec, weights_path, device, batch_size, seed),
    )
    names = {
        "frechet_inception_distance": "fid",
        "inception_score_mean": "isc_mean",
        "inception_score_std": "isc_std",
        "kernel_inception_distance_mean": "kid_mean",
        "kernel_inception_distance_std": "kid_std",
        "precision": "precision",
        "recall": "recall",
        "f_score": "f_score",
    }
    out: dict[str, Any] = {names[k]: float(v) for k, v in raw.items() if k in names}
    out.update(extractor=extractor, n_gen=n1)
    if binary:
        out["n_ref"] = n2
    if kid:
        out.update(kid_subset_size=kid_subset_size, kid_subsets=kid_subsets)
    if isc:
        out["isc_splits"] = isc_splits
    return out


def extract_features(
    images: np.ndarray | torch.Tensor,
    extractor: str = "evalnet",
    weights_path: str | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
) -> dict[str, torch.Tensor]:
    """The extractor's features, exactly as `compute_metrics` sees them, on the CPU.

    Returns {"features": (N, D) float32 for FID / KID / PRC, "logits": (N, C) float32 for IS}.
    """
    spec = _spec(extractor)
    _check_weights(extractor, weights_path, "weights_path")
    data = _UInt8Images(images, spec.in_channels)
    kw = _common_kwargs(spec, weights_path, device, batch_size, seed=0)
    layers = [spec.feature_layer, spec.logits_layer]
    net = create_feature_extractor(spec.fidelity_name, layers, **kw)
    feats = get_featuresdict_from_dataset(
        data, net, batch_size, kw["cuda"], save_cpu_ram=True, verbose=False
    )
    return {"features": feats[spec.feature_layer], "logits": feats[spec.logits_layer]}


def feature_statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,) and unbiased covariance (D, D), both float64."""
    f = np.asarray(features.cpu() if torch.is_tensor(features) else features, dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64:

    ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)),

    the square root by `scipy.linalg.sqrtm` (pytorch-fid's formulation; torch-fidelity takes the
    trace from eigenvalues instead, which agrees to rounding). A singular product gets `eps` on the
    diagonals, as pytorch-fid does.
    """
    mu1, mu2 = np.atleast_1d(np.float64(mu1)), np.atleast_1d(np.float64(mu2))
    sigma1, sigma2 = np.atleast_2d(np.float64(sigma1)), np.atleast_2d(np.float64(sigma2))
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma1)) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = covmean.real  # imaginary parts are rounding noise for PSD inputs
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))

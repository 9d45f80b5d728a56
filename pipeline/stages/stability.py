"""stability: the paper's Table 1 -> metrics/stability.json.

For each tokenizer and each pixel perturbation of the val images: the fraction of token ids that
change, the mean cosine similarity between clean and perturbed quantized vectors (centroids for
K-Means tokens, codebook entries for VQ tokens), and the same for the pre-quantization features.
Gaussian noise is added in [0, 1] pixel space at SNR = 10 log10(mean(x^2) / sigma^2) per image,
without clipping (digit.metrics.stability), at the paper's SNRs.

Kept fair (most of the small encoder's stability comes from its noise augmentation, which is the
perturbation the table tests):
beside the main encoder and VQ, the encoder trained *without* noise augmentation and a VQ trained
*with* the same noise augmentation, and perturbations outside every augmentation set
(salt-and-pepper, one- and two-pixel shifts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from digit.images import uint8_to_float
from digit.kmeans import Assigner, KMeansConfig, fit_kmeans
from digit.metrics.stability import mean_cosine, salt_and_pepper, shift, token_change_rate
from digit.noise import add_gaussian_noise_snr
from digit.progress import progress
from digit.vq import VQVAE
from pipeline import io
from pipeline.checkpoints import load_model
from pipeline.encoder_files import load_encoder
from pipeline.images import load_images
from pipeline.params import Params
from pipeline.stage import cli, resolve_device, stage

log = logging.getLogger("digit.stability")


@dataclass
class Tokenizer:
    """x (B, C, H, W) in [0, 1] -> pre-quantization features, ids, quantized vectors."""

    name: str
    describe: str
    features: Callable[[torch.Tensor], torch.Tensor]  # -> (B, L, D)
    ids: Callable[[torch.Tensor], torch.Tensor]  # features -> (B, L)
    quantized: Callable[[torch.Tensor], torch.Tensor]  # ids -> (B, L, D)


def disc_tokenizer(name, describe, encoder, centroids: np.ndarray, spherical: bool) -> Tokenizer:
    assign = Assigner(centroids, spherical)
    table = torch.from_numpy(centroids)

    def features(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != encoder.input_size:
            x = F.interpolate(x, size=(encoder.input_size,) * 2, mode="bicubic", antialias=True)
        return encoder.patch_features(x).float()

    def ids(f: torch.Tensor) -> torch.Tensor:
        b, length, d = f.shape
        return torch.from_numpy(assign(f.reshape(-1, d).cpu().numpy())).view(b, length)

    return Tokenizer(name, describe, features, ids, lambda i: table[i])


def vq_tokenizer(name: str, describe: str, vq) -> Tokenizer:
    def features(x: torch.Tensor) -> torch.Tensor:
        return vq.encode(x).flatten(2).transpose(1, 2).float()  # (B, L, D)

    def ids(f: torch.Tensor) -> torch.Tensor:
        b, length, d = f.shape
        return vq.quantizer.lookup(f.reshape(-1, d)).view(b, length).cpu()

    return Tokenizer(
        name, describe, features, ids, lambda i: vq.embed_ids(i.to(vq_device(vq))).cpu()
    )


def vq_device(vq) -> torch.device:
    return next(vq.parameters()).device


def perturbations(params: Params) -> list[tuple[str, str, float, Callable]]:
    s = params.stability
    out = [
        (
            "gaussian",
            f"SNR {snr:g} dB",
            snr,
            lambda x, g, v: add_gaussian_noise_snr(x, v, g, torch.float64),
        )
        for snr in s.snr_db
    ]
    out += [
        ("salt_pepper", f"salt & pepper {f:g}", f, lambda x, g, v: salt_and_pepper(x, v, g))
        for f in s.salt_pepper
    ]
    out += [
        ("shift", f"shift {p} px", p, lambda x, g, v: shift(x, (0, int(v)))) for p in s.shift_px
    ]
    return out


def fit_centroids(params: Params, encoder, pixels: np.ndarray, k: int, device: str) -> np.ndarray:
    """K-Means for an encoder that has no kmeans stage (the no-noise-augmentation control)."""
    feats = []
    with torch.inference_mode():
        for i in range(0, len(pixels), params.extract.batch_size):
            x = torch.from_numpy(pixels[i : i + params.extract.batch_size]).to(device)
            feats.append(encoder(x).float().cpu().numpy())
    x = np.concatenate(feats).reshape(-1, encoder.dim)
    c = params.kmeans
    cfg = KMeansConfig(k, c.niter, params.seed, c.max_points_per_centroid, c.spherical)
    return fit_kmeans(x, cfg).centroids


@torch.inference_mode()
def measure(tok: Tokenizer, pixels: np.ndarray, perts, seed: int, batch: int, device: str) -> dict:
    rows = {"token_change": [], "cos_quantized": [], "cos_features": []}
    clean = []
    for i in range(0, len(pixels), batch):
        x = uint8_to_float(torch.from_numpy(pixels[i : i + batch]).to(device))
        f = tok.features(x)
        clean.append((x, f, tok.ids(f)))
    # Cosines are taken around each space's clean mean (see mean_cosine): fair to non-negative
    # K-Means centroids and signed VQ codes alike.
    center_f = torch.cat([f.flatten(0, 1).cpu().double() for _, f, _ in clean]).mean(0)
    center_q = torch.cat([tok.quantized(ids).flatten(0, 1).double() for _, _, ids in clean]).mean(0)
    for p_index, (_, _, value, fn) in enumerate(perts):
        # The same noise draws for every tokenizer: one generator per perturbation, fixed seed.
        g = torch.Generator().manual_seed(seed * 1000 + p_index)
        changed, cos_q, cos_f, n = 0.0, 0.0, 0.0, 0
        for x, f, ids in clean:
            xp = fn(x.cpu(), g, value).to(device)
            fp = tok.features(xp)
            idp = tok.ids(fp)
            b = len(x)
            changed += token_change_rate(ids, idp) * b
            cos_q += mean_cosine(tok.quantized(ids), tok.quantized(idp), center_q) * b
            cos_f += mean_cosine(f.cpu(), fp.cpu(), center_f) * b
            n += b
        rows["token_change"].append(round(changed / n, 4))
        rows["cos_quantized"].append(round(cos_q / n, 4))
        rows["cos_features"].append(round(cos_f / n, 4))
    return rows


def run(
    params: Params,
    images: str,
    encoder: str,
    centroids: str,
    vq: str,
    metrics: str,
    encoder_nonoise: str | None = None,
    vq_noise: str | None = None,
) -> dict:
    device = resolve_device(params.device)
    data = load_images(images)
    val = data.images[data.val][: params.stability.max_images]
    train = data.images[data.train]
    k = params.kmeans.main_k
    spherical = params.kmeans.spherical
    aug = "noise-augmented" if params.ssl.noise_aug else "no noise augmentation"
    toks = [
        disc_tokenizer(
            "disc",
            f"{params.encoder.name} ({aug}) + K-Means K={k}",
            load_encoder(encoder, device),
            np.load(centroids),
            spherical,
        )
    ]
    if encoder_nonoise:
        enc = load_encoder(encoder_nonoise, device)
        toks.append(
            disc_tokenizer(
                "disc_nonoise",
                f"{params.encoder.name} trained without noise augmentation + K-Means K={k}",
                enc,
                fit_centroids(params, enc, train, k, device),
                spherical,
            )
        )
    vq_model, _ = load_model(vq, "vq", VQVAE.from_config, device)
    toks.append(vq_tokenizer("vq", "VQ autoencoder", vq_model))
    if vq_noise:
        toks.append(
            vq_tokenizer(
                "vq_noise",
                "VQ autoencoder trained with the same noise augmentation",
                load_model(vq_noise, "vq", VQVAE.from_config, device)[0],
            )
        )
    perts = perturbations(params)
    results = {}
    for tok in progress(toks, desc="stability", unit="tokenizer"):
        results[tok.name] = {
            "describe": tok.describe,
            **measure(tok, val, perts, params.seed, 250, device),
        }
        log.info("%s token change: %s", tok.name, results[tok.name]["token_change"])
    summary = {
        "protocol": (
            f"{len(val)} val images; token change = fraction of the L token ids that differ between "
            "clean and perturbed image; cos = mean over tokens of the cosine similarity between "
            "clean and perturbed vectors (quantized: centroid / codebook entry; features: before "
            "quantization), each centred on its space's mean clean vector so that non-negative "
            "(post-ReLU) and signed (VQ) vectors are compared on one footing; Gaussian noise at SNR = 10 log10(mean(x^2) / sigma^2) per image, x in "
            "[0, 1], not clipped; the same noise draws for every tokenizer"
        ),
        "perturbations": [{"kind": kd, "label": lb, "value": v} for kd, lb, v, _ in perts],
        "tokenizers": results,
    }
    io.write_json(metrics, summary)
    return summary


def main() -> None:
    args = cli(
        __doc__,
        "images",
        "encoder",
        "centroids",
        "vq",
        "metrics",
        optional=("encoder_nonoise", "vq_noise"),
    )
    with stage("stability", args.params) as params:
        run(
            params,
            args.images,
            args.encoder,
            args.centroids,
            args.vq,
            args.metrics,
            args.encoder_nonoise,
            args.vq_noise,
        )


if __name__ == "__main__":
    main()

"""stability: the paper's Table 1 for one tokenizer -> metrics/stability_<tokenizer>.json.

For each pixel perturbation of the val images: the fraction of token ids that change, the mean
cosine similarity between clean and perturbed quantized vectors (centroids for K-Means tokens,
codebook entries for VQ tokens), and the same for the pre-quantization features. Gaussian noise is
added in [0, 1] pixel space at SNR = 10 log10(mean(x^2) / sigma^2) per image, without clipping
(digit.metrics.stability), at the paper's SNRs. The noise draws depend on the seed and the
perturbation only: every tokenizer sees the same perturbed images.

One stage per tokenizer of the run (a row of every table that compares tokenizers): the main
encoder's K-Means at each K, each row of params ``encoders`` (among them the encoder trained
*without* noise augmentation: most of a small encoder's stability comes from that augmentation,
which is the perturbation the table tests), the VQ autoencoder and the VQ trained *with* the same
noise augmentation; and perturbations outside every augmentation set (salt-and-pepper, one- and
two-pixel shifts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from digit.images import uint8_to_float
from digit.kmeans import Assigner
from digit.metrics.stability import mean_cosine, salt_and_pepper, shift, token_change_rate
from digit.noise import add_gaussian_noise_snr
from digit.vq import VQVAE
from pipeline import io
from pipeline.checkpoints import load_model
from pipeline.encoder_files import load_encoder
from pipeline.images import load_images
from pipeline.params import Params
from pipeline.stage import StageError, cli, resolve_device, stage

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


def tokenizer(params: Params, name: str, device: str, **files: str | None) -> Tokenizer:
    """The tokenizer of the stage's files: ``encoder`` + ``centroids`` (K-Means tokens; ``row``:
    the encoder is that row of ``encoders``) or ``vq`` (a VQ autoencoder's codes)."""
    if files.get("vq"):
        model, ckpt = load_model(files["vq"], "vq", VQVAE.from_config, device)
        made = ckpt["extra"].get("params", {})
        row = (made.get("vq_rows") or {}).get(name.removeprefix("vq_"), {})  # a row of vq_rows
        noise = made.get("vq", {}).get("noise_aug")
        describe = row.get("label") or "VQ autoencoder" + (
            " trained with the encoder's noise augmentation" if noise else ""
        )
        return vq_tokenizer(name, describe, model)
    if not (files.get("encoder") and files.get("centroids")):
        raise StageError("stability: give --vq, or --encoder with --centroids")
    row = files.get("row")
    p = params.for_encoder(row) if row else params
    centroids = np.load(files["centroids"])
    aug = "noise-augmented" if p.ssl.noise_aug else "no noise augmentation"
    label = f"{params.encoders[row].label}: " if row else ""
    describe = f"{label}{p.encoder.name} ({p.ssl.objective}, {aug}) + K-Means K={len(centroids)}"
    encoder = load_encoder(files["encoder"], device)
    return disc_tokenizer(name, describe, encoder, centroids, params.kmeans.spherical)


PROTOCOL = (
    "token change = fraction of the L token ids that differ between clean and perturbed image; "
    "cos = mean over tokens of the cosine similarity between clean and perturbed vectors "
    "(quantized: centroid / codebook entry; features: before quantization), each centred on its "
    "space's mean clean vector so that non-negative (post-ReLU) and signed (VQ) vectors are "
    "compared on one footing; Gaussian noise at SNR = 10 log10(mean(x^2) / sigma^2) per image, x "
    "in [0, 1], not clipped; the same noise draws for every tokenizer"
)


def run(params: Params, name: str, images: str, metrics: str, **files: str | None) -> dict:
    device = resolve_device(params.device)
    data = load_images(images)
    val = data.images[data.val][: params.stability.max_images]
    tok = tokenizer(params, name, device, **files)
    perts = perturbations(params)
    summary = {
        "tokenizer": name,
        "describe": tok.describe,
        "protocol": f"{len(val)} val images; {PROTOCOL}",
        "perturbations": [{"kind": kd, "label": lb, "value": v} for kd, lb, v, _ in perts],
        **measure(tok, val, perts, params.seed, 250, device),
    }
    log.info("%s token change: %s", name, summary["token_change"])
    io.write_json(metrics, summary)
    return summary


def main() -> None:
    args = cli(
        __doc__,
        "images",
        "metrics",
        extra={"tokenizer": str},
        optional=("encoder", "centroids", "row", "vq"),
    )
    with stage(f"stability@{args.tokenizer}", args.params) as params:
        run(
            params,
            args.tokenizer,
            args.images,
            args.metrics,
            encoder=args.encoder,
            centroids=args.centroids,
            row=args.row,
            vq=args.vq,
        )


if __name__ == "__main__":
    main()

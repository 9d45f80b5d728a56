"""generate: one set of images -> samples/<name>.zarr + reports/figures/samples_<name>.png, scored
-> metrics/scores_<name>.json (FID / IS / KID / precision-recall; pipeline/stages/evaluate.py).

The sets of the paper's Tables 3 and 4, by ``--source``:

* ``sample``: a token model (``--token_model``) samples N token sequences (unconditional, or
  class-conditional with labels cycling through the classes) with ``generate.token_model`` /
  ``generate.token_model_cond`` settings. DiGIT's discriminative tokens are then rendered to VQ tokens by
  a renderer (``--renderer``, "+VQGAN" or "+MaskGIT" by its kind, ``generate.renderer_*``
  settings); the VQ baseline's tokens need no renderer. The VQ decoder turns VQ tokens into pixels.
* ``gt``: the upper bound "ground-truth DiGIT tokens + renderer": discriminative tokens of val
  images (``--tokens``) rendered by ``--renderer``.
* ``recon``: the upper bound "VQ reconstruction only": val images through the VQ autoencoder.

The Zarr store holds ``images`` (N, H, W, C) uint8, ``tokens`` (N, L) (the token-model sequence: sampled,
or the ground truth), ``vq_tokens`` (N, L) (what the decoder rendered) and ``labels`` (N,) where
there are any (class-conditional sets, and the val images' labels for the upper bounds). The token model and
the renderer draw from separate seeded streams, so every set sampled from one token model with the
same settings starts from the same token sequences whichever renderer follows. The store's
``info`` attribute is the metrics JSON less its wall-clock figures (``TIMING``): a re-run writes the
same bytes.

How the sampling steps sample (the fair comparison of Table 3 and claim 2 gives each side the same
chances): as params' ``generate`` section says (the paper's: the renderer at top-p 0.8), or, by
``--variant``, ``untruncated`` (every step, token model and renderer, at top-k 0 / top-p 1, the
temperature kept) or ``selected`` (each step at the setting the side's sampling search chose on
train images, ``--sampling`` = its metrics/sampling_<side>.json; pipeline/stages/sampling.py).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from digit.generate import generate, maskgit_generate
from digit.gpt import GPT
from digit.images import float_to_uint8, uint8_to_float
from digit.seeding import seeded_generator
from digit.vq import VQVAE
from pipeline import evaluate, io
from pipeline.checkpoints import check_rows, load_model, load_tokens
from pipeline.images import load_images
from pipeline.params import Params
from pipeline.stage import StageError, cli, record_timing, resolve_device, stage

log = logging.getLogger("digit.generate")

SOURCES = ("sample", "gt", "recon")
TIMING = ("seconds", "tokens_per_second", "decode_seconds")  # the timings file only


def without_timing(summary: dict) -> dict:
    """``summary`` less the ``TIMING`` keys, at any depth."""
    return {
        k: without_timing(v) if isinstance(v, dict) else v
        for k, v in summary.items()
        if k not in TIMING
    }


def timing_of(summary: dict, prefix: str = "") -> dict[str, float]:
    """The ``TIMING`` keys of ``summary``, at any depth, flat: ``token_model.seconds``, ..."""
    found = {}
    for k, v in summary.items():
        if isinstance(v, dict):
            found |= timing_of(v, f"{prefix}{k}.")
        elif k in TIMING:
            found[f"{prefix}{k}"] = v
    return found


def sample_token_model(
    params: Params, model: GPT, n: int, device: str
) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """(n, L) tokens, (n,) labels or None, and the settings + throughput."""
    g = params.generate
    conditional = model.config.n_classes > 0
    s = g.token_model_cond if conditional else g.token_model
    # Runs of ``grid`` equal labels: row r of the figure shows class r; classes stay balanced.
    labels = (torch.arange(n) // g.grid) % model.config.n_classes if conditional else None
    t0 = time.perf_counter()
    tokens = generate(
        model,
        n,
        cond=labels,
        temperature=s.temperature,
        top_k=s.top_k,
        top_p=s.top_p,
        cfg_scale=getattr(s, "cfg_scale", 1.0),
        batch_size=g.batch_size,
        generator=seeded_generator(params.seed, 10, device=device),
        use_cache=g.use_cache,
        progress=True,
    )
    seconds = time.perf_counter() - t0
    info = {
        **s.model_dump(),
        "use_cache": g.use_cache,
        "seconds": round(seconds, 2),
        "tokens_per_second": round(tokens.numel() / seconds, 1),
    }
    return tokens.cpu(), labels, info


def render(
    params: Params, model: GPT, prefix: torch.Tensor, device: str
) -> tuple[torch.Tensor, dict]:
    """The renderer: (n, P) discriminative tokens -> (n, L) VQ tokens, and the settings + throughput."""
    g = params.generate
    gen = seeded_generator(params.seed, 11, device=device)
    t0 = time.perf_counter()
    if model.config.causal:
        s = g.renderer_causal
        ids = generate(
            model,
            len(prefix),
            prefix=prefix,
            temperature=s.temperature,
            top_k=s.top_k,
            top_p=s.top_p,
            batch_size=g.batch_size,
            generator=gen,
            use_cache=g.use_cache,
            progress=True,
        )
        info = {"renderer": "causal", **s.model_dump(), "use_cache": g.use_cache}
    else:
        s = g.renderer_maskgit
        ids = maskgit_generate(
            model,
            prefix=prefix,
            steps=s.steps,
            temperature=s.temperature,
            generator=gen,
            top_k=s.top_k,
            top_p=s.top_p,
            choice_temperature=s.choice_temperature,
            batch_size=g.batch_size,
            progress=True,
        )
        info = {"renderer": "maskgit", **s.model_dump()}
    seconds = time.perf_counter() - t0
    info.update(seconds=round(seconds, 2), tokens_per_second=round(ids.numel() / seconds, 1))
    return ids.cpu(), info


@torch.no_grad()
def decode(vq: VQVAE, ids: torch.Tensor, batch_size: int, device: str) -> np.ndarray:
    """(n, L) VQ ids -> (n, H, W, C) uint8 pixels."""
    out = [
        float_to_uint8(vq.decode_ids(ids[rows].to(device))).cpu().numpy()
        for rows in io.iter_blocks(len(ids), batch_size)
    ]
    return np.concatenate(out)


@torch.no_grad()
def reconstruct(vq: VQVAE, images: np.ndarray, batch_size: int, device: str) -> torch.Tensor:
    """(n, H, W, C) uint8 -> (n, L) VQ ids."""
    out = [
        vq.tokenize(uint8_to_float(torch.from_numpy(images[rows])).to(device)).cpu()
        for rows in io.iter_blocks(len(images), batch_size)
    ]
    return torch.cat(out)


def tile(images: np.ndarray, grid: int) -> np.ndarray:
    """(n, H, W, C) uint8 -> (grid (H + 1) + 1, grid (W + 1) + 1, C): the first grid x grid images
    in row-major order with 1 px gray (128) gaps and margins; blank gray cells if fewer."""
    n, h, w, c = images.shape
    canvas = np.full((grid * (h + 1) + 1, grid * (w + 1) + 1, c), 128, dtype=np.uint8)
    for i in range(min(n, grid * grid)):
        r, col = divmod(i, grid)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + col * (w + 1) : 1 + col * (w + 1) + w] = (
            images[i]
        )
    return canvas


def save_grid(images: np.ndarray, path: str, title: str, grid: int) -> None:
    """The first grid x grid images tiled (``tile``) under a title, as a 600 x 640 px PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = images.shape[-1]
    canvas = tile(images, grid)
    fig, ax = plt.subplots(figsize=(6, 6.4))
    ax.imshow(
        canvas[..., 0] if c == 1 else canvas, cmap="gray" if c == 1 else None, vmin=0, vmax=255
    )
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def save_comparison(
    originals: np.ndarray, recon: np.ndarray, rendered: np.ndarray, path: str, title: str, n: int
) -> None:
    """The same ``n`` val images three times: originals, VQ reconstructions, the renderer's
    images of their ground-truth discriminative tokens (one row each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("original", originals), ("VQ reconstruction", recon), ("renderer", rendered)]
    fig, axes = plt.subplots(3, 1, figsize=(n * 0.6 + 1.6, 3 * 0.75 + 0.6))
    for ax, (label, images) in zip(axes, rows, strict=True):
        strip = np.concatenate(list(images[:n]), axis=1)  # (H, n W, C)
        c = strip.shape[-1]
        ax.imshow(
            strip[..., 0] if c == 1 else strip, cmap="gray" if c == 1 else None, vmin=0, vmax=255
        )
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def check_vocab(what: str, got: int, expected: int, by: str) -> None:
    if got != expected:
        raise StageError(f"{what} has a vocabulary of {got} but {by} expects {expected}")


UNTRUNCATED = {"top_k": 0, "top_p": 1.0}


def sampled_as(params: Params, how: str | None, search: str | None) -> Params:
    """``params`` with the ``generate`` settings of ``--variant`` ``how`` (module doc): None or
    "main" as they are, "untruncated", or "selected" from the sampling search file ``search``."""
    g = params.generate
    if how == "untruncated":
        steps = {"token_model": UNTRUNCATED, "renderer_causal": UNTRUNCATED}
    elif how == "selected":
        if search is None:
            raise StageError("--variant selected needs --sampling (the side's sampling search)")
        chosen = io.read_json(search)["selected"]
        steps = {"token_model": chosen["token_model"]}
        if chosen.get("renderer"):
            steps["renderer_causal"] = chosen["renderer"]
    elif how in (None, "main"):
        return params
    else:
        raise StageError(f"--variant: expected main, untruncated or selected; got {how!r}")
    update = {step: getattr(g, step).model_copy(update=kp) for step, kp in steps.items()}
    return params.model_copy(update={"generate": g.model_copy(update=update)})


def val_subset(params: Params, is_val: np.ndarray) -> np.ndarray:
    """At most n_samples val indices, in a seeded random order (images may be stored by class)."""
    val = np.flatnonzero(is_val)
    order = np.random.default_rng(params.seed).permutation(val)
    return order[: params.generate.n_samples]


def run(
    params: Params,
    source: str,
    name: str,
    images: str,
    vq: str,
    out: str,
    figure: str,
    metrics: str,
    token_model: str | None = None,
    renderer: str | None = None,
    tokens: str | None = None,
    compare: str | None = None,
    evalnet: str | None = None,
    scores: str | None = None,
) -> dict:
    """Generate the set; with ``evalnet`` and ``scores``, score it too (pipeline/evaluate.py)
    from the images in memory."""
    if source not in SOURCES:
        raise StageError(f"--source: expected one of {SOURCES}, got {source!r}")
    need = {"sample": ["token_model"], "gt": ["renderer", "tokens"], "recon": []}[source]
    given = {"token_model": token_model, "renderer": renderer, "tokens": tokens}
    missing = [k for k in need if given[k] is None]
    if missing:
        raise StageError(f"--source {source} needs --{' --'.join(missing)}")
    device = resolve_device(params.device)
    g = params.generate
    vq_model, _ = load_model(vq, "vq", VQVAE.from_config, device)
    data = load_images(images, with_pixels=source == "recon" or bool(compare or scores))
    summary: dict = {"name": name, "source": source}
    labels = None
    class_names: list[str] = data.class_names
    kind_of_renderer = None

    s2 = None if renderer is None else load_model(renderer, "gpt", GPT.from_config, device)[0]
    if s2 is not None:
        check_vocab(vq, vq_model.cfg.codebook_size, s2.config.vocab_size, renderer)
    if source == "sample":
        ar, ar_ckpt = load_model(token_model, "gpt", GPT.from_config, device)
        seq, labels, summary["token_model"] = sample_token_model(params, ar, g.n_samples, device)
        kind = ar_ckpt["extra"]["token_kind"]
        if kind == "disc":
            if s2 is None:
                raise StageError(
                    f"{token_model}: discriminative tokens need a renderer (--renderer)"
                )
            check_vocab(token_model, ar.config.vocab_size, s2.config.prefix_vocab_size, renderer)
            vq_ids, summary["renderer"] = render(params, s2, seq, device)
            kind_of_renderer = summary["renderer"]["renderer"]
        else:
            if s2 is not None:
                raise StageError(f"{token_model}: a model over VQ tokens takes no renderer")
            check_vocab(token_model, ar.config.vocab_size, vq_model.cfg.codebook_size, vq)
            vq_ids = seq
    elif source == "gt":
        rows = val_subset(params, data.is_val)
        disc = load_tokens(tokens)
        check_rows(disc, len(data.labels), tokens)
        seq = torch.from_numpy(disc.tokens[rows].astype(np.int64))
        labels = torch.from_numpy(data.labels[rows])
        check_vocab(tokens, disc.vocab, s2.config.prefix_vocab_size, renderer)
        vq_ids, summary["renderer"] = render(params, s2, seq, device)
        kind_of_renderer = summary["renderer"]["renderer"]
    else:
        rows = val_subset(params, data.is_val)
        labels = torch.from_numpy(data.labels[rows])
        seq = vq_ids = reconstruct(vq_model, data.images[rows], g.batch_size, device)

    t0 = time.perf_counter()
    pixels = decode(vq_model, vq_ids, g.batch_size, device)
    summary["decode_seconds"] = round(time.perf_counter() - t0, 2)
    summary["n"] = len(pixels)
    # Wall-clock figures to the timings file; the store and the metrics JSON get the rest.
    record_timing(**timing_of(summary))
    summary = without_timing(summary)
    with io.zarr_group_writer(out) as group:
        for key, arr, dtype in (
            ("images", pixels, "uint8"),
            ("tokens", seq.numpy(), "int32"),
            ("vq_tokens", vq_ids.numpy(), "int32"),
        ):
            io.create_array(group, key, arr.shape, 4096, dtype)[:] = arr.astype(dtype)
        if labels is not None:
            group.create_array(name="labels", data=labels.numpy().astype(np.int64))
        group.attrs.update(
            name=name,
            source=source,
            renderer=kind_of_renderer,
            class_names=class_names,
            info=summary,
        )
    what = {"sample": "samples", "gt": "ground-truth tokens", "recon": "VQ reconstructions"}[source]
    conditional = source == "sample" and labels is not None
    cond = ", class-conditional: row r = class r" if conditional else ""
    via = f" -> renderer {kind_of_renderer}" if kind_of_renderer else ""
    save_grid(pixels, figure, f"{name}: {what}{via}{cond}", g.grid)
    if compare is not None:
        if source != "gt":
            raise StageError("--compare: the side-by-side figure is for --source gt")
        n = min(16, len(rows))
        originals = data.images[rows[:n]]
        recon = decode(vq_model, reconstruct(vq_model, originals, n, device), n, device)
        title = f"{name}: the same val images, original / VQ reconstruction / renderer"
        save_comparison(originals, recon, pixels[:n], compare, title, n)
    io.write_json(metrics, summary)
    log.info("%s: %d images -> %s", name, len(pixels), out)
    if scores is not None:
        # Against the labels: conditioned on (samples) or of the rendered val image (bounds).
        key = "cond_top1" if source == "sample" else "source_top1"
        given = None if labels is None else labels.numpy()
        ref = data.images[data.val]
        evaluate.score(params, name, pixels, given, key, ref, evalnet, scores)
    return summary


def main() -> None:
    args = cli(
        __doc__,
        "images",
        "vq",
        "out",
        "figure",
        "metrics",
        "evalnet",
        "scores",
        extra={"source": str, "name": str},
        optional=("token_model", "renderer", "tokens", "compare", "variant", "sampling"),
    )
    with stage(f"generate_{args.name}", args.params) as params:
        params = sampled_as(params, args.variant, args.sampling)
        run(
            params,
            args.source,
            args.name,
            args.images,
            args.vq,
            args.out,
            args.figure,
            args.metrics,
            token_model=args.token_model,
            renderer=args.renderer,
            tokens=args.tokens,
            compare=args.compare,
            evalnet=args.evalnet,
            scores=args.scores,
        )


if __name__ == "__main__":
    main()

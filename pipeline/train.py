"""The training loop of every transformer in the DAG (token models and renderers), with resume.

DiGIT trains its models with Adam(W), a warm-up then a decaying learning rate, gradient clipping
and label smoothing (docs/paper.md, "optimisation"); all of it comes from params.yaml through
``TrainConfig``. The loop lives here, not in ``digit/``, because it writes files: checkpoints and
dvclive curves. What a model learns (next-token, class-conditional, prefix-conditional, MaskGIT) is
an ``Objective``: a small function from a batch of token rows to the model's loss.

Checkpoints and resume. Every ``checkpoint_every`` steps the whole training state (model config and
weights, optimizer, step, RNG states, the loss history, a fingerprint of what is being trained) is
written atomically to ``<checkpoint dir>/last.pt``. The checkpoint directory is a path *outside*
DVC's outs (``checkpoints/<model>/``, git-ignored) that the stage deletes once the final model is
written, rather than a ``persist: true`` out: DVC then records only finished results in dvc.lock,
nothing half-trained is ever cached or pushed, and a stage killed mid-way is simply not finished, so
the next ``dvc repro`` runs it again and the loop resumes from ``last.pt``. A checkpoint whose
fingerprint (model config, training config, objective, the data's hash) differs from the run's is
stale, e.g. params were edited in between: it is discarded and training starts over.

Determinism: batch order is one permutation per epoch and the objective's randomness (class
dropout, MaskGIT masks) one generator per step, both derived from (seed, epoch or step); dropout
draws from the global RNG, whose state the checkpoint carries. So on the CPU a resumed run reaches
the same weights, bit for bit, as an uninterrupted one (tests/test_train.py).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from digit.generate import maskgit_mask
from digit.gpt import GPT, build_gpt
from digit.precision import Precision, optimizer_step
from digit.progress import progress as progress_bar
from digit.schedule import SCHEDULES, lr_at
from digit.seeding import seeded_generator
from pipeline import ddp, io
from pipeline.checkpoints import save_model
from pipeline.ddp import Rank
from pipeline.params import GPTModelFields, Params, TrainFields, build_config
from pipeline.resume import (
    Checkpoints,
    CurveLogger,
    code_fingerprint,
    fingerprint,
    rng_state,
    set_rng_state,
)
from pipeline.stage import StageError, apply_variant, cli, record_timing, resolved_params, stage

log = logging.getLogger("digit.train")


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 0
    schedule: str = "cosine"  # after warm-up: cosine to lr * min_lr_ratio | inverse_sqrt | constant
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # max global grad norm; 0 = off
    label_smoothing: float = 0.0
    eval_every: int = 0  # 0 = evaluate at the end only
    # The curve's evaluations score the first eval_rows val rows (0 = all), a fixed subset; the
    # model's reported val loss (final_val_loss) is scored on all of them after the last step.
    eval_rows: int = 0
    checkpoint_every: int = 0  # 0 = no checkpoints
    log_every: int = 10
    eval_batch_size: int = 256
    # torch.compile the training forward/backward (evaluation stays eager). Off by default: on 2
    # CPU cores compiling costs about a minute per process (reports/benchmarks.md, item 6), more
    # than the default's 30-s runs could save; on an H100 it is 1.2x for the 219M model.
    compile: bool = False
    precision: str = "fp32"  # fp32 | bf16 | fp16: digit.precision (autocast, fp16 loss scale)
    tf32: bool = False  # CUDA: TF32 for float32 matmuls / convolutions
    seed: int = 0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")


# --------------------------------------------------------------------------------- objectives


@dataclass(frozen=True)
class Objective:
    """What the model learns from a batch {"tokens": (B, L), ["labels": (B,)], ["prefix": (B, P)]}.

    masked=False: next-token prediction over all L tokens (token models, and the "+VQGAN" renderer when
    a prefix is given; the loss covers the target tokens only). masked=True: MaskGIT, the loss on
    the positions masked by the cosine schedule (the "+MaskGIT" renderer). class_dropout replaces
    the class by the NULL class with that probability in training, for classifier-free guidance.
    """

    masked: bool = False
    class_dropout: float = 0.0

    def loss(
        self,
        model: GPT,
        batch: dict[str, Tensor],
        generator: torch.Generator,
        label_smoothing: float = 0.0,
        train: bool = True,
        shard: slice = slice(None),
        forward: Callable[..., Any] | None = None,
    ) -> Tensor:
        """``shard``: the rows of the batch this process trains on (data-parallel ranks); the
        randomness is drawn for the whole batch first, so N ranks see the masks and dropped
        classes one process would. ``forward``: what to call instead of ``model`` (its DDP
        wrapper)."""
        # Randomness is drawn on the CPU from ``generator`` so results do not depend on the device.
        device = model.wpe.device
        forward = model if forward is None else forward
        tokens = batch["tokens"]  # (B, L)
        cond = batch.get("labels")  # (B,) or None
        if cond is not None and train and self.class_dropout > 0:
            drop = torch.rand(cond.shape, generator=generator) < self.class_dropout
            cond = cond.masked_fill(drop, model.config.null_class)
        prefix = batch.get("prefix")  # (B, P) or None
        cond = None if cond is None else cond[shard].to(device)
        prefix = None if prefix is None else prefix[shard].to(device)
        if self.masked:
            inp, loss_mask = maskgit_mask(tokens, model.config.mask_id, generator)  # (B, L) x2
            _, loss = forward(
                inp[shard].to(device),
                cond=cond,
                prefix=prefix,
                targets=tokens[shard].to(device),
                label_smoothing=label_smoothing,
                loss_mask=loss_mask[shard].to(device),
            )
        else:
            tokens = tokens[shard].to(device)
            _, loss = forward(
                tokens[:, :-1],
                cond=cond,
                prefix=prefix,
                targets=tokens,
                label_smoothing=label_smoothing,
            )
        return loss


@torch.no_grad()
def evaluate(
    model: GPT,
    objective: Objective,
    data: dict[str, Tensor],
    batch_size: int,
    seed: int,
    precision: Precision | None = None,
) -> float:
    """Mean loss in nats per predicted token over ``data``, without label smoothing or class
    dropout. MaskGIT masks come from a fixed generator: every evaluation sees the same masks."""
    was_training = model.training
    model.eval()
    g = seeded_generator(seed, 3)
    n = len(data["tokens"])
    total, weight = 0.0, 0.0
    for rows in io.iter_blocks(n, batch_size):
        batch = {k: v[rows] for k, v in data.items()}
        b = rows.stop - rows.start
        with (precision or Precision()).autocast(model.wpe.device):
            loss = objective.loss(model, batch, g, 0.0, train=False)
        total += float(loss) * b
        weight += b
    model.train(was_training)
    return total / max(weight, 1.0)


def evaluate_sharded(
    model: GPT,
    objective: Objective,
    data: dict[str, Tensor],
    cfg: TrainConfig,
    rank: Rank | None,
    device: str,
) -> float:
    """``evaluate`` over all of ``data``; under DDP each rank takes its share of the rows."""
    precision = Precision(cfg.precision, cfg.tf32)
    if rank is None:
        return evaluate(model, objective, data, cfg.eval_batch_size, cfg.seed, precision)
    rows = rank.shard(len(data["tokens"]))
    part = {k: v[rows] for k, v in data.items()}
    n = rows.stop - rows.start
    mean = evaluate(model, objective, part, cfg.eval_batch_size, cfg.seed, precision) if n else 0.0
    total, weight = ddp.all_sum([mean * n, float(n)], device)
    return total / max(weight, 1.0)


VAL_ALL = "val_all/loss"  # the last evaluation over every val row, when the curve uses a subset


def final_val_loss(history: list[dict[str, float]]) -> float:
    """The trained model's val loss (nats / token) over every val row: the curve's last point,
    or the full evaluation beside it when the curve scores ``eval_rows`` rows only."""
    last = history[-1]
    return last.get(VAL_ALL, last["val/loss"])


# ----------------------------------------------------------------------------------- the loop


class Interrupt(Exception):
    """Raised by an ``on_step`` callback to stop training (tests simulate a kill with it)."""


def load_checkpoint(checkpoints: Checkpoints | None, main: bool) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None to start afresh. Rank 0 looks first: it removes a
    stale checkpoint before the other ranks look."""
    if checkpoints is None:
        return None
    saved = checkpoints.load() if main else None
    ddp.barrier()
    return saved if main else checkpoints.load()


def epoch_batches(
    data: dict[str, Tensor], batch_size: int, seed: int, start: int, steps: int
) -> Iterator[tuple[int, dict[str, Tensor]]]:
    """(step, batch) for steps ``start`` .. ``steps`` - 1: the rows of each epoch in one
    permutation drawn from (seed, epoch), the last partial batch dropped (every step sees
    ``batch_size`` rows). Where a run starts does not change which rows a step sees."""
    n = len(data["tokens"])
    steps_per_epoch = n // batch_size
    perm, perm_epoch = None, -1
    for step in range(start, steps):
        epoch, i = divmod(step, steps_per_epoch)
        if epoch != perm_epoch:
            perm = torch.randperm(n, generator=seeded_generator(seed, 0, epoch))
            perm_epoch = epoch
        rows = perm[i * batch_size : (i + 1) * batch_size]
        yield step, {k: v[rows] for k, v in data.items()}


@dataclass
class Stepper:
    """How this process takes a training step: AdamW (weight decay on matrices only) in the run's
    precision, through ``forward``, the model's DDP wrapper or compiled version (None: the model),
    on the ``shard`` rows of every batch. Its state, the model's and the loop's make a checkpoint."""

    model: GPT
    objective: Objective
    cfg: TrainConfig
    device: str
    opt: torch.optim.Optimizer
    precision: Precision
    scaler: Any
    shard: slice
    forward: Callable[..., Any] | None

    @classmethod
    def setup(
        cls,
        model: GPT,
        objective: Objective,
        cfg: TrainConfig,
        device: str,
        rank: Rank | None,
        batch_size: int,
    ) -> Stepper:
        shard, forward = slice(None), None
        if rank is not None:
            from torch.nn.parallel import DistributedDataParallel

            shard = rank.shard(batch_size)
            # Broadcasts rank 0's weights at construction, then averages gradients in backward.
            forward = DistributedDataParallel(
                model, device_ids=[model.wpe.device] if model.wpe.device.type == "cuda" else None
            )
        if cfg.compile:  # shares the model's parameters; checkpoints keep the plain state dict
            forward = torch.compile(model if forward is None else forward)

        decay = [p for p in model.parameters() if p.ndim >= 2]  # not biases, norms, positions
        no_decay = [p for p in model.parameters() if p.ndim < 2]
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=cfg.lr,
            betas=tuple(cfg.betas),
            foreach=True,  # one kernel per op over all tensors: CUDA's default, ~25% of a CPU step
        )
        precision = Precision(cfg.precision, cfg.tf32)
        precision.set_tf32()
        scaler = precision.scaler(device)
        return cls(model, objective, cfg, device, opt, precision, scaler, shard, forward)

    def step(self, step: int, batch: dict[str, Tensor]) -> tuple[float, Tensor]:
        """One optimisation step on ``batch`` at step ``step``'s learning rate: (lr, loss)."""
        cfg = self.cfg
        lr = lr_at(step, cfg.steps, cfg.lr, cfg.warmup_steps, cfg.schedule, cfg.min_lr_ratio)
        for group in self.opt.param_groups:
            group["lr"] = lr
        g = seeded_generator(cfg.seed, 1, step)
        with self.precision.autocast(self.device):
            loss = self.objective.loss(
                self.model,
                batch,
                g,
                cfg.label_smoothing,
                train=True,
                shard=self.shard,
                forward=self.forward,
            )
        optimizer_step(loss, self.opt, self.scaler, self.model.parameters(), cfg.grad_clip)
        return lr, loss

    def checkpoint(
        self,
        done: int,
        history: list[dict[str, float]],
        window: list[float],
        meta: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The whole training state after ``done`` steps, from which ``restore`` and the loop go
        on as if never stopped: weights, optimizer, loss scale, RNG states and the loop's own."""
        return {
            "step": done,
            "model_config": dataclasses.asdict(self.model.config),
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "history": history,
            "window": window,
            "train_config": dataclasses.asdict(self.cfg),
            "meta": meta or {},
        }

    def restore(self, saved: dict[str, Any]) -> None:
        self.model.load_state_dict(saved["model"], strict=True)
        self.opt.load_state_dict(saved["optimizer"])
        self.scaler.load_state_dict(saved["scaler"])


def val_losses(
    model: GPT,
    objective: Objective,
    val_data: dict[str, Tensor],
    cfg: TrainConfig,
    rank: Rank | None,
    device: str,
    last: bool,
) -> dict[str, float]:
    """A history row's evaluation: the val loss over the first ``cfg.eval_rows`` val rows (all when
    0), and at the ``last`` step over every row too (VAL_ALL) when that was a subset."""
    part = val_data
    if cfg.eval_rows:
        part = {k: v[: cfg.eval_rows] for k, v in val_data.items()}
    val = evaluate_sharded(model, objective, part, cfg, rank, device)
    row = {"val/loss": val, "val/bits_per_token": val / math.log(2)}
    if cfg.eval_rows and last:  # the model's own: every val row
        row[VAL_ALL] = evaluate_sharded(model, objective, val_data, cfg, rank, device)
    return row


def train(
    model: GPT,
    objective: Objective,
    train_data: dict[str, Tensor],
    val_data: dict[str, Tensor],
    cfg: TrainConfig,
    *,
    device: str = "cpu",
    checkpoints: Checkpoints | None = None,
    live_dir: str | Path | None = None,
    meta: dict[str, Any] | None = None,
    on_step: Callable[[int], None] | None = None,
    desc: str = "train",
    progress: bool = True,
    rank: Rank | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place; returns the history (one row per log / eval step).

    train_data / val_data: tensors with the same first dimension, on the CPU ("tokens" (N, L)
    int64, optional "labels" (N,) and "prefix" (N, P)). Rows: step, lr, train/loss (mean over the
    logging window), and at evaluation steps val/loss and val/bits_per_token (over ``cfg.eval_rows``
    val rows when set, and then the last row also holds VAL_ALL). ``meta`` is stored
    in every checkpoint (resolved params, names). ``on_step(done)`` runs after every step.

    ``rank`` (under torchrun, see pipeline/ddp.py): the model is wrapped in DistributedDataParallel
    and each rank trains on its shard of every batch (global batch = ``cfg.batch_size``); losses
    in the history are means over ranks; rank 0 alone writes checkpoints and curves. Every rank
    returns the same history.
    """
    n = len(train_data["tokens"])
    if n == 0:
        raise ValueError("no training rows")
    model.to(device)
    model.train()
    bs = min(cfg.batch_size, n)
    main = rank is None or rank.is_main
    stepper = Stepper.setup(model, objective, cfg, device, rank, bs)
    history: list[dict[str, float]] = []
    window = [0.0, 0]  # summed train loss, steps, since the last history row
    start = 0
    saved = load_checkpoint(checkpoints, main)
    if saved is not None:
        stepper.restore(saved)
        history, window, start = saved["history"], saved["window"], saved["step"]
        log.info("%s: resuming from step %d of %d", desc, start, cfg.steps)
    curves = CurveLogger(live_dir if main else None, history)
    if saved is not None:  # last: nothing after this may draw from the global RNGs
        set_rng_state(saved["rng"])
    if rank is not None:  # independent dropout on each rank (the weights are rank 0's already)
        torch.manual_seed(seeded_generator(cfg.seed, 5, rank.rank, start).initial_seed())

    bar = progress_bar(
        total=cfg.steps, initial=start, desc=desc, unit="step", disable=not (progress and main)
    )
    saving = checkpoints is not None and main and cfg.checkpoint_every > 0
    t0 = time.perf_counter()
    try:
        for step, batch in epoch_batches(train_data, bs, cfg.seed, start, cfg.steps):
            lr, loss = stepper.step(step, batch)
            window[0] += float(loss.detach())
            window[1] += 1
            done = step + 1
            is_eval = done == cfg.steps or (cfg.eval_every > 0 and done % cfg.eval_every == 0)
            if is_eval or done % cfg.log_every == 0:
                row = {"step": done, "lr": lr, "train/loss": window[0] / window[1]}
                if rank is not None:
                    row["train/loss"] = ddp.all_mean([row["train/loss"]], device)[0]
                if is_eval:
                    last = done == cfg.steps
                    row.update(val_losses(model, objective, val_data, cfg, rank, device, last))
                history.append(row)
                curves.log({k: v for k, v in row.items() if k != VAL_ALL})
                window = [0.0, 0]
                shown = {"train": "train/loss", "val": "val/loss"}
                bar.set_postfix({k: f"{row[key]:.3f}" for k, key in shown.items() if key in row})
            if saving and done % cfg.checkpoint_every == 0 and done < cfg.steps:
                checkpoints.save(stepper.checkpoint(done, history, window, meta))
            bar.update(1)
            if on_step is not None:
                on_step(done)
    finally:
        bar.close()
        curves.close()
    if cfg.steps > start and main:
        log.info("%s: %d steps in %.1f s", desc, cfg.steps - start, time.perf_counter() - t0)
    return history


# ------------------------------------------------------------------------- from params.yaml


def train_config(section: TrainFields, seed: int) -> TrainConfig:
    """The ``TrainFields`` of a params section (ar, renderer) as a TrainConfig."""
    return build_config(TrainConfig, section, seed=seed)


@dataclass
class StageRun:
    """One transformer trained by a stage (ar, renderer): its config, history and checkpoints."""

    name: str
    cfg: TrainConfig
    history: list[dict[str, float]]
    seconds: float
    checkpoints: Checkpoints
    params: dict[str, Any]  # the resolved params.yaml, stored in the model file
    is_main: bool  # False on the DDP ranks that write nothing
    flops: int = 0  # training compute: forward + backward FLOPs of every step (training_flops)


def training_flops(
    model: GPT, objective: Objective, train_data: dict[str, Tensor], cfg: TrainConfig
) -> int:
    """Forward + backward FLOPs of a whole run, counted by torch's FlopCounterMode on one batch of
    the run's shape (its first ``batch_size`` train rows) times the steps. Matrix products and
    attention, as scaling studies count compute; embedding lookups and element-wise work are left
    out. A deterministic count (no clock), so reports can set two models' compute side by side.
    Leaves no gradients behind and draws from no stream of the run."""
    from torch.utils.flop_counter import FlopCounterMode

    rows = slice(0, min(cfg.batch_size, len(train_data["tokens"])))
    batch = {k: v[rows] for k, v in train_data.items()}
    counter = FlopCounterMode(display=False)
    with counter:
        loss = objective.loss(model, batch, torch.Generator().manual_seed(0))
        loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops()) * cfg.steps


def train_stage(
    name: str,
    model: GPT,
    objective: Objective,
    train_data: dict[str, Tensor],
    val_data: dict[str, Tensor],
    section: TrainFields,
    params: Any,
    *,
    checkpoints: str,
    live: str,
    device: str,
    rank: Rank | None,
    code: tuple[Any, ...],
    meta: dict[str, Any] | None = None,
) -> StageRun:
    """``train`` as a stage runs it: the config from ``section``, resumable checkpoints keyed by
    everything that decides the result (model and train configs, objective, the source of
    ``code`` modules and the data), dvclive curves under ``live``."""
    cfg = train_config(section, params.seed)
    fp = fingerprint(
        name,
        dataclasses.asdict(model.config),
        dataclasses.asdict(cfg),
        str(objective),
        code_fingerprint(*code),
        *[train_data[k] for k in sorted(train_data)],
        *[val_data[k] for k in sorted(val_data)],
    )
    ck = Checkpoints(checkpoints, fp)
    resolved = resolved_params(params)
    t0 = time.perf_counter()
    history = train(
        model,
        objective,
        train_data,
        val_data,
        cfg,
        device=device,
        checkpoints=ck,
        live_dir=live,
        meta={"name": name, **(meta or {}), "params": resolved},
        desc=name,
        rank=rank,
    )
    seconds = time.perf_counter() - t0
    flops = training_flops(model, objective, train_data, cfg)
    return StageRun(name, cfg, history, seconds, ck, resolved, rank is None or rank.is_main, flops)


def finish_stage(
    run: StageRun,
    model: GPT,
    objective: Objective,
    out: str,
    metrics: str,
    summary: dict[str, Any],
    timing: dict[str, float],
    **extra: Any,
) -> dict[str, Any]:
    """Write the model file (config, weights, params, train config, ``summary`` as its metrics,
    ``extra``) and the metrics JSON (``summary``); ``timing``, the wall-clock figures, goes to the
    stage's timings file only. Then drop the training checkpoints: the run is finished. Returns
    what the metrics JSON holds."""
    save_model(
        out,
        "gpt",
        dataclasses.asdict(model.config),
        model,
        run.cfg.steps,
        objective=dataclasses.asdict(objective),
        params=run.params,
        train_config=dataclasses.asdict(run.cfg),
        metrics=summary,
        **extra,
    )
    io.write_json(metrics, summary)
    record_timing(**timing)
    run.checkpoints.clean()
    return summary


def build_model(section: GPTModelFields, **fixed: Any) -> GPT:
    """The named size of a params section with its overrides; ``fixed`` sets what the data
    decides (vocab_size, block_size, n_classes, prefix). Bad combinations are a StageError."""
    names = [k for k in GPTModelFields.model_fields if k != "size"]
    overrides = {k: getattr(section, k) for k in names if getattr(section, k) is not None}
    try:
        return build_gpt(section.size, **overrides, **fixed)
    except (KeyError, ValueError) as err:
        raise StageError(f"{section.size} GPT: {err}".replace('"', "")) from None


def stage_main(
    doc: str | None,
    section: str,
    paths: tuple[str, ...],
    extra: dict[str, type],
    variants: Callable[[Params], dict[str, dict]],
    run: Callable[..., Any],
) -> None:
    """The ``main()`` of a stage that trains one transformer per ``--name`` (ar, renderer): its
    command line (``paths``, ``extra`` and an optional ``--variant``), params with the variant's
    overrides of ``section`` (``variants(params)``), a relaunch under torchrun when
    ``<section>.nproc`` > 1, then ``run(params, ...)`` with every argument by name."""
    args = cli(doc, *paths, extra=extra, optional=("variant",))
    with stage(f"{section}_{args.name}", args.params) as params:
        params = apply_variant(params, section, variants(params), args.variant)
        if ddp.relaunch(getattr(params, section).nproc, f"{section}.nproc"):
            return  # the torchrun ranks did the work
        run(params, **{k: getattr(args, k) for k in (*extra, *paths)})

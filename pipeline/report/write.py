"""write_reports: every table, figure, claims.md and the index reports/README.md, from one
metrics directory. The `report` stage (pipeline/stages/report.py) calls it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline import io, sets
from pipeline.params import Params
from pipeline.report import overview, tables
from pipeline.report.claims import Verdict, write_claims
from pipeline.report.metrics import Metrics
from pipeline.report.summary import write_summary
from pipeline.report.tables import Table


def small_print(params: Params, m: Metrics, live: str | Path | None = None) -> list[str]:
    """What this run keeps small to fit its budget, from its params and metrics: the reader's
    reminder of where the numbers come from."""
    prep = m.get(sets.PREPARE) or {}
    ar = m.get(sets.ar(sets.disc_model(params.kmeans.main_k))) or {}
    rd = m.get(sets.renderer(sets.renderer_name("disc", params.kmeans.main_k, "causal"))) or {}
    return [
        f"- Data: {prep.get('n_train', '?')} train / {prep.get('n_val', '?')} val images of "
        f"`{params.data.dataset}` at {params.data.image_size} px; the paper: ImageNet, 1.28M at "
        "256 px.",
        f"- Token models: `{params.ar.size}` GPT, width {params.ar.n_embd or 'of the size'}, "
        f"{params.ar.steps} steps ({ar.get('epochs', '?')} epochs); renderers: "
        f"{params.renderer.n_layer or 'the size'}-block `{params.renderer.size}` GPT, "
        f"{params.renderer.steps} steps ({rd.get('epochs', '?')} epochs), prefix mode "
        f"`{params.renderer.prefix_mode}`"
        + (f" with a {k} x {k} neighbourhood" if (k := params.renderer.neighbourhood) > 1 else "")
        + ". The paper: 219M / 732M parameters, 200-400 epochs.",
        f"- Seeds: {len(params.seeds)} ({params.seeds}) for the token models and probes behind "
        f"claims 3-4, {len(params.sample_seeds)} of them ({params.sample_seeds}) for the "
        "renderers and samples behind claims 2 and 4; every variant (class-conditional, MaskGIT, "
        "encoder-axis rows, "
        "Fig. 3(a)'s path) once, from the main seed. Each seed replicates the tokenizers too: "
        "K-Means (every K) and the VQ autoencoder are fit once per seed, so the intervals hold "
        "their variance. Fixed across seeds: the encoder (trained once, main seed: the "
        "subject, like the paper's frozen DINOv2) and the evaluation network (the ruler every "
        "FID / IS is read with).",
        *still_learning(params, m, live),
        f"- Samples: {params.generate.n_samples} per set, scored with "
        f"`{params.evaluate.extractor}` features against the val split; the paper: 50k, Inception.",
        f"- K-Means: K in {params.kmeans.ks} over a `{params.encoder.name}` encoder trained here "
        "(the paper: 1024-8192 over frozen DINOv2).",
    ]


def still_learning(params: Params, m: Metrics, live: str | Path | None = None) -> list[str]:
    """How far the token models are from done: where the main DiGIT and VQ val curves stand (the
    share of their drop made in the second half of training), and the val loss of the main-K
    model against the same model trained path.steps_factor times longer (Fig. 3(a))."""
    k = params.kmeans.main_k
    out = []
    if live is not None:
        per_seed = sets.seeded_models(params.kmeans.ks)
        shares = []
        for label, model in ((f"DiGIT K={k}", sets.disc_model(k)), ("VQ", sets.VQ_MODEL)):
            folder = sets.ar(sets.model_stem(model, params.seed, per_seed))
            share = overview.late_share(overview.read_curve(Path(live), folder, "val"))
            if share is not None:
                shares.append(f"{label} {share:.0%}")
        if shares:
            out.append(
                "- Token models past their steep part: of the val-loss drop from the first "
                f"evaluation to the last, the second half of that span made {', '.join(shares)} "
                "(main seed; a straight line would make 50%; loss_curves.png)."
            )
    short = m.get(sets.ar(sets.disc_model(k)))
    long = m.get(sets.ar(sets.path_model(k, "long")))
    if short and long:
        out.append(
            f"- ... and still learning: K={k} val loss {short['val_loss']:.3f} nats after "
            f"{short['steps']} steps, {long['val_loss']:.3f} after {long['steps']} "
            "(ablation_tokenizer.md shows what the longer training buys in FID)."
        )
    return out


def write_reports(
    params: Params, metrics_dir: str | Path, out: str | Path, live: str | Path | None = None
) -> list[Verdict]:
    """Raises MissingMetrics (a FileNotFoundError) naming the first file of the DAG a table
    needs and ``metrics_dir`` lacks. ``live``: the dvclive folder the training curves come from
    (none: the curves figure says so)."""
    out = Path(out)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    m = Metrics.load(metrics_dir, params.seeds, params.sample_seeds)
    builders: list[Callable[[], Table]] = [
        lambda: tables.table1(params, m, figdir),
        lambda: tables.table2(params, m, figdir),
        lambda: tables.table3(params, m),
        lambda: tables.table4(params, m),
        lambda: tables.ablation_tokenizer(params, m),
        lambda: tables.ablation_k(params, m),
        lambda: tables.ablation_encoder(params, m),
        lambda: tables.encoder_table(params, m),
        lambda: tables.sampling_table(params, m, figdir),
        lambda: tables.toy_table(params, m),
        lambda: tables.thesis_table(params, m, figdir),
    ]
    built = [b() for b in builders]
    for t in built:
        t.write(out)
    verdicts = write_claims(params, m, out)
    fig1_note = overview.fig1(params, m, figdir)
    overview.loss_curves(params, live, figdir)
    write_summary(params, m, verdicts, out)
    index = [
        "# Reports",
        "",
        "Generated by the `report` stage from metrics/*.json; never edited by "
        "hand. Paper numbers: pipeline/paper.yaml.",
        "",
        "- [claims.md](claims.md): the paper's five claims and its title's thesis, tested",
    ]
    index += [f"- [{t.name}.md]({t.name}.md): {t.title}" for t in built]
    index += [
        "- [summary.json](summary.json): the headline numbers (`dvc metrics show`)",
        "",
        "## Overview figures",
        "",
        f"![Fig. 1 analogue](figures/{overview.FIG1})",
        "",
        "Fig. 1's analogue: linear-probe top-1 (best layer) vs FID of every generated and probed "
        f"token model of this run, beside the paper's. {fig1_note}",
        "",
        f"![training curves](figures/{overview.CURVES})",
        "",
        "Training curves (dvclive/<model>/; `dvc plots show` draws them all interactively).",
    ]
    index += ["", "## What the default leaves small", "", *small_print(params, m, live)]
    # The grids are the generate stages' outs, not this stage's deps: list those present.
    grids = sorted(p.name for p in figdir.glob("samples_*.png"))
    if grids:
        index += ["", "## Sample grids", ""] + [f"- [{g}](figures/{g})" for g in grids]
    with io.atomic_path(out / "README.md") as tmp:
        tmp.write_text("\n".join(index) + "\n")
    return verdicts

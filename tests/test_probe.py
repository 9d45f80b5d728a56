"""digit.metrics.probe: one linear classifier per layer, trained at once on frozen features; the
probe stage's pooling and its pairing of features with labels."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from digit.gpt import build_gpt
from digit.metrics.probe import train_linear_probes
from pipeline import checks
from pipeline.images import Images
from pipeline.stages import probe as stage
from pipeline.stages.probe import pooled_hidden_states

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def _layers(n_train: int, n_val: int, informative: int, n_layers: int = 4, d: int = 16):
    """(n_layers, N, d) features where only layer `informative` carries the class (3 classes):
    train and val features and labels."""
    n = n_train + n_val
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    feats = torch.randn(n_layers, n, d, generator=g) * 5.0 + 3.0  # scaled, off-centre noise
    centres = torch.randn(3, d, generator=g)
    feats[informative] += centres[y] * 5.0
    feats[informative] *= 100.0  # a far larger scale than the other layers: standardization copes
    return feats[:, :n_train], y[:n_train], feats[:, n_train:], y[n_train:]


def test_best_layer_is_the_informative_one():
    xtr, ytr, xva, yva = _layers(600, 300, informative=2)
    out = train_linear_probes(xtr, ytr, xva, yva, n_classes=3, epochs=5, lr=0.1, batch_size=64)
    assert out["best_layer"] == 2
    assert out["best_top1"] > 0.9
    others = [a for i, a in enumerate(out["top1_per_layer"]) if i != 2]
    assert max(others) < 0.6  # chance is 1/3
    assert len(out["top1_per_layer"]) == 4 and len(out["final_train_loss_per_layer"]) == 4


def test_deterministic():
    xtr, ytr, xva, yva = _layers(256, 128, informative=1)
    kw = dict(n_classes=3, epochs=3, lr=0.2, weight_decay=1e-4, batch_size=32, seed=7)
    a = train_linear_probes(xtr, ytr, xva, yva, **kw)
    b = train_linear_probes(xtr, ytr, xva, yva, **kw)
    assert a == b


def test_layers_train_independently():
    """A layer's result does not depend on which other layers are probed beside it."""
    xtr, ytr, xva, yva = _layers(256, 128, informative=1)
    kw = dict(n_classes=3, epochs=3, lr=0.2, batch_size=32, seed=0)
    both = train_linear_probes(xtr, ytr, xva, yva, **kw)
    one = train_linear_probes(xtr[1:2], ytr, xva[1:2], yva, **kw)
    assert one["top1_per_layer"][0] == pytest.approx(both["top1_per_layer"][1])
    assert one["final_train_loss_per_layer"][0] == pytest.approx(
        both["final_train_loss_per_layer"][1], rel=1e-5
    )


def test_shape_errors():
    x = torch.zeros(2, 10, 4)
    y = np.zeros(10, dtype=int)
    with pytest.raises(ValueError, match="n_layers"):
        train_linear_probes(x[0], y, x, y, n_classes=2, epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="does not match"):
        train_linear_probes(x, y, x[:1], y, n_classes=2, epochs=1, lr=0.1)


def _reference_probe(
    xtr,
    ytr,
    xva,
    yva,
    n_classes,
    epochs,
    lr,
    momentum,
    weight_decay,
    batch_size,
    seed,
    warmup_epochs,
):
    """The probe as its docstring describes it, written plainly: per layer, features standardized
    with the train split's mean and (biased) std, a zero-initialised nn.Linear, SGD with momentum
    and weight decay on weight and bias, a linear warm-up then cosine to 0 over every step, and one
    shuffle of the train rows per epoch drawn from a generator seeded with `seed` (shared by the
    layers). Returns (val top-1, last batch's loss) per layer."""
    n_layers, n, _ = xtr.shape
    gen = torch.Generator().manual_seed(seed)
    perms = [torch.randperm(n, generator=gen) for _ in range(epochs)]
    steps = epochs * -(-n // batch_size)
    warm = warmup_epochs * -(-n // batch_size)

    def rate(t):
        if t < warm:
            return lr * (t + 1) / warm
        return lr * 0.5 * (1 + math.cos(math.pi * (t - warm) / max(1, steps - warm)))

    top1, losses = [], []
    for layer in range(n_layers):
        mean = xtr[layer].mean(0)
        std = ((xtr[layer] - mean) ** 2).mean(0).sqrt().clamp_min(1e-6)
        a, v = (xtr[layer] - mean) / std, (xva[layer] - mean) / std
        head = torch.nn.Linear(a.shape[1], n_classes)
        torch.nn.init.zeros_(head.weight), torch.nn.init.zeros_(head.bias)
        opt = torch.optim.SGD(
            head.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
        )
        t = 0
        for perm in perms:
            for i in range(0, n, batch_size):
                rows = perm[i : i + batch_size]
                opt.param_groups[0]["lr"] = rate(t)
                loss = torch.nn.functional.cross_entropy(head(a[rows]), ytr[rows])
                opt.zero_grad()
                loss.backward()
                opt.step()
                t += 1
        with torch.no_grad():
            top1.append(float((head(v).argmax(1) == yva).float().mean()))
        losses.append(float(loss.detach()))
    return top1, losses


@pytest.mark.parametrize(
    "settings",
    [
        {},  # the defaults: epochs 80, lr 0.4, momentum 0.9, no weight decay, batch 256, seed 0
        dict(
            epochs=6,
            lr=0.3,
            momentum=0.5,
            weight_decay=0.01,
            batch_size=64,
            seed=3,
            warmup_epochs=2,
        ),
    ],
    ids=["defaults", "every-knob"],
)
def test_matches_a_plain_reimplementation(settings):
    """The batched probe against the plain one above, loss for loss: a changed default, schedule,
    normalization, bias or batching moves the losses (a relative 1e-3 or more, measured)."""
    defaults = dict(
        epochs=80, lr=0.4, momentum=0.9, weight_decay=0.0, batch_size=256, seed=0, warmup_epochs=0
    )
    xtr, ytr, xva, yva = _layers(300, 150, informative=1, n_layers=3, d=8)
    ytr = ytr.clone()
    ytr[::7] = (ytr[::7] + 1) % 3  # label noise: the loss stays well above 0 and keeps moving
    out = train_linear_probes(xtr, ytr, xva, yva, n_classes=3, **settings)
    top1, losses = _reference_probe(xtr, ytr, xva, yva, 3, **{**defaults, **settings})
    assert out["final_train_loss_per_layer"] == pytest.approx(losses, rel=2e-5)
    assert out["top1_per_layer"] == pytest.approx(top1, abs=1 / 150 + 1e-9)
    assert min(losses) > 0.2 and max(losses) < 1.5  # measured 0.40 to 1.12: still training


def test_learning_rate_per_step_is_the_documented_schedule(monkeypatch):
    """Every SGD step's rate, bit for bit: warm-up, then the cosine with its angle taken as
    pi * (step - warmup) / span (the rounding the committed probes were trained with)."""
    seen = []
    step = torch.optim.SGD.step

    def record(self, *a, **kw):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.SGD, "step", record)
    xtr, ytr, xva, yva = _layers(100, 20, informative=0, n_layers=1, d=4)
    train_linear_probes(
        xtr, ytr, xva, yva, n_classes=3, epochs=7, lr=0.3, batch_size=32, warmup_epochs=2
    )
    total, warm = 7 * 4, 2 * 4
    want = [0.3 * (t + 1) / warm for t in range(warm)]
    want += [
        0.3 * 0.5 * (1 + math.cos(math.pi * (t - warm) / (total - warm)))
        for t in range(warm, total)
    ]
    assert seen == want


def test_numpy_inputs_and_int32_labels():
    """Features as numpy arrays work like tensors; labels of any integer dtype are class ids."""
    xtr, ytr, xva, yva = _layers(120, 60, informative=0, n_layers=2, d=4)
    kw = dict(n_classes=3, epochs=2, lr=0.1, batch_size=32)
    want = train_linear_probes(xtr, ytr, xva, yva, **kw)
    got = train_linear_probes(
        xtr.numpy(), ytr.numpy().astype(np.int32), xva.numpy(), yva.numpy().astype(np.int32), **kw
    )
    assert got == want


def test_label_errors_name_what_disagrees():
    x = torch.zeros(2, 10, 4)
    y = np.zeros(10, dtype=int)
    with pytest.raises(ValueError, match=r"train_feats must be \(n_layers, N, D\)"):
        train_linear_probes(x[0], y, x, y, n_classes=2)
    with pytest.raises(ValueError, match=r"val_feats must be \(n_layers, N, D\)"):
        train_linear_probes(x, y, x[0], y, n_classes=2)
    for ytr, yva in ((y[:9], y), (y, y[:9])):  # either one alone is caught
        with pytest.raises(ValueError, match="labels and features disagree in length"):
            train_linear_probes(x, ytr, x, yva, n_classes=2)


# ---- the stage (pipeline/stages/probe.py): pooling, and features matched to their labels -------


class StubGPT:
    """hidden_states like digit.gpt.GPT's with the input first (1 + n_layer x (B, 1 + L, D),
    position 0 the start token): layer j's state at a position is (j + 1) * the token id there
    (0 at the start), in all D dims."""

    n_layer, dim = 2, 5

    def hidden_states(self, idx, with_input=False):
        assert with_input
        x = torch.cat([torch.zeros(len(idx), 1), idx.double()], 1)  # (B, 1 + L)
        return [(j + 1) * x[..., None].expand(-1, -1, self.dim) for j in range(1 + self.n_layer)]


def test_pooling_is_the_mean_over_every_position_of_every_block():
    tokens = np.random.default_rng(0).integers(0, 9, size=(7, 6)).astype(np.uint16)
    feats = pooled_hidden_states(StubGPT(), tokens, batch=3, device="cpu")  # batches 3, 3, 1
    assert feats.shape == (3, 7, 5) and feats.dtype == torch.float32
    mean = torch.from_numpy(tokens.astype(np.float64)).sum(1) / 7  # start token + 6 positions
    for j in range(3):
        assert torch.allclose(feats[j], ((j + 1) * mean).float()[:, None].expand(-1, 5))
    assert torch.equal(pooled_hidden_states(StubGPT(), tokens, batch=100, device="cpu"), feats)


def test_pooling_a_real_gpt_is_per_row():
    """A real GPT: one row's features do not depend on its batch or on the other rows."""
    torch.manual_seed(0)
    model = build_gpt("tiny", vocab_size=16, block_size=8).eval()
    tokens = np.random.default_rng(1).integers(0, 16, size=(10, 8))
    feats = pooled_hidden_states(model, tokens, batch=4, device="cpu")
    assert feats.shape == (3, 10, 64)  # the input embedding and two blocks
    perm = np.random.default_rng(2).permutation(10)
    again = pooled_hidden_states(model, tokens[perm], batch=10, device="cpu")
    assert torch.allclose(again, feats[:, perm], atol=1e-5)


def test_stage_pairs_each_row_with_its_label(tmp_path, monkeypatch):
    """Tokens that carry the class (class c draws from ids 4c..4c+3), val rows interleaved with
    train rows: the probe of a random tiny GPT's pooled states is perfect (measured 1.0 at both
    blocks), and at chance (measured 0.33) once the labels no longer belong to their rows."""
    params = checks.load(ROOT / "params.yaml")
    params = params.model_copy(
        update={
            "device": "cpu",
            "probe": params.probe.model_copy(update={"epochs": 20, "lr": 0.1, "batch_size": 32}),
        }
    )
    n = 240
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    tokens = (labels[:, None] * 4 + rng.integers(0, 4, size=(n, 8))).astype(np.uint16)
    is_val = np.arange(n) % 4 == 1
    torch.manual_seed(0)
    model = build_gpt("tiny", vocab_size=12, block_size=8).eval()
    ckpt = {"extra": {"metrics": {"val_loss": 1.5}}}
    monkeypatch.setattr(stage, "load_model", lambda path, kind, build, device: (model, ckpt))
    monkeypatch.setattr(
        stage, "load_tokens", lambda path: type("T", (), {"tokens": tokens, "vocab": 12})
    )

    def probe(labels):
        images = Images(np.empty((0,)), labels, is_val, ["a", "b", "c"])
        monkeypatch.setattr(stage, "load_images", lambda path, with_pixels: images)
        return stage.run(params, "k12", "m", "t", "i", str(tmp_path / "probe.json"))

    out = probe(labels)
    assert out["n_layers"] == 2 and len(out["top1_per_layer"]) == 2
    assert out["best_top1"] > 0.9
    assert out["best_top1"] == max(out["top1_per_layer"])
    assert out["best_layer"] == 1 + out["top1_per_layer"].index(out["best_top1"])  # 1-based
    assert "60 val images" in out["protocol"] and out["val_loss"] == 1.5
    assert out["raw_tokens_top1"] > 0.9 and out["embedding_top1"] > 0.9  # the class is in the ids
    shuffled = probe(rng.permutation(labels))
    assert shuffled["best_top1"] < 0.6  # chance is 1/3
    assert shuffled["raw_tokens_top1"] < 0.6 and shuffled["embedding_top1"] < 0.6


def test_best_layer_is_chosen_on_held_out_train_images():
    """The split that chooses the layer is part of train, seeded, disjoint from what the probes
    fit, and never touches val."""
    from pipeline.stages.probe import select_split

    train = np.arange(0, 1000, 2)  # the val rows are the odd ones
    fit, held = select_split(train, 0.2, seed=0)
    assert len(held) == 100 and len(fit) == 400
    assert set(fit) | set(held) == set(train) and not set(fit) & set(held)
    again = select_split(train, 0.2, seed=0)
    assert np.array_equal(again[1], held)
    assert not np.array_equal(select_split(train, 0.2, seed=1)[1], held)

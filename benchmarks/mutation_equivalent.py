"""Surviving mutants accepted as equivalent, each with the reason no test can tell it apart.

One row per accepted survivor: (module, function, a piece of the removed line, a piece of the added
line, why). benchmarks/mutation.py matches survivors against these rows; a survivor that matches
none is listed as unexplained. Keep rows specific: a row that matches a real gap hides it.
"""

LADDER = "digit/metrics/ladder.py"
STREAM = "another fixed random stream: the same distribution, as deterministic"
FLOAT64 = "float64 instead of float32: the same uint8 images but for rounding at half grey levels"
NO_REPLACE = "numpy reads replace=None as False: still drawn without replacement"
PROBE = "digit/metrics/probe.py"
KMEANS = "digit/kmeans.py"
STABILITY = "digit/metrics/stability.py"
DEVICE = (
    "a device move: the tests run on the CPU, where every tensor already is (the GPU path is "
    "exercised by the GPU benchmark on a device machine)"
)
AS_TENSOR = "torch.as_tensor takes arrays and tensors alike: the branch only chooses who converts"
LOOSER = "a looser near-tie threshold re-decides more rows in float64, with the same exact answer"
FULL_SHIFT = (
    "the shortcut for a shift of the whole image: padding by at least its size and cropping "
    "gives the same all-fill image"
)
CROPPED_PAD = "an extra fill row or column on the side that the crop drops"
SAMPLING = "digit/generate.py"
P_OFF = "a top_p of 2 is off like 1: the nucleus filter runs only below 1"
P_AT_ONE = (
    "at top_p 1 the nucleus filter drops only tokens whose strictly-better mass rounds to 1 in "
    "float32, i.e. probabilities below float32's resolution: the same draws"
)
DEFAULT_DIM = "the dimension the call uses by default"

EQUIVALENT: tuple[tuple[str, str, str, str, str], ...] = (
    (LADDER, "noise_ladder", "images.astype(np.float32)", "images.astype(None)", FLOAT64),
    (LADDER, "noise_ladder", "dtype=np.float32", "dtype=None", FLOAT64),
    (LADDER, "noise_ladder", "dtype=np.float32", "standard_normal(x.shape, )", FLOAT64),
    (LADDER, "noise_ladder", "[seed, 31]", "[seed, 32]", STREAM),
    (
        LADDER,
        "noise_ladder",
        "x + s * z",
        "x - s * z",
        "Gaussian noise is symmetric: -z is another draw of the same distribution",
    ),
    (LADDER, "class_ladder", "[seed, 32]", "[seed, 33]", STREAM),
    (LADDER, "class_ladder", "replace=False", "replace=None", NO_REPLACE),
    (LADDER, "quality_ladders", "[seed, 30]", "[seed, 31]", STREAM),
    (LADDER, "quality_ladders", "replace=False", "replace=None", NO_REPLACE),
    (PROBE, "_as_feats", "if not torch.is_tensor(x) else x", "and False else x", AS_TENSOR),
    (PROBE, "_as_feats", "if not torch.is_tensor(x) else x", "or True else x", AS_TENSOR),
    (
        PROBE,
        "_as_feats",
        "if not torch.is_tensor(x) else x",
        "if torch.is_tensor(x) else",
        AS_TENSOR,
    ),
    (PROBE, "_as_feats", "if not torch.is_tensor(x) else x", "torch.is_tensor(None)", AS_TENSOR),
    (PROBE, "train_linear_probes", "device = torch.device(device)", "device = None", DEVICE),
    (PROBE, "train_linear_probes", ".to(device)", ".to(None)", DEVICE),
    (PROBE, "train_linear_probes", "device=device, requires_grad", "device=None, requires", DEVICE),
    (PROBE, "train_linear_probes", "n_classes, device=device,", "n_classes, requires_grad", DEVICE),
    (
        PROBE,
        "train_linear_probes",
        "SGD([w, b], lr=lr,",
        "SGD([w, b], momentum=",
        "every step sets the rate from the schedule before it runs: the constructor's is unused",
    ),
    (
        PROBE,
        "train_linear_probes",
        "zero_grad(set_to_none=True)",
        "zero_grad(set_to_none=",
        "gradients zeroed or dropped before backward(): the same gradients after it",
    ),
    (
        PROBE,
        "train_linear_probes",
        "last_loss = torch.zeros(n_layers)",
        "last_loss = None",
        "overwritten by the first step: epochs is at least 1 (the params schema: PosInt)",
    ),
    (
        PROBE,
        "train_linear_probes",
        "yva = torch.as_tensor(np.asarray(val_labels), dtype=torch.long)",
        "yva = torch.as_tensor(np.asarray(val_labels), ",
        "val labels are only compared with ==, which any integer dtype serves",
    ),
    (
        KMEANS,
        "fit_kmeans",
        "np.asarray(km.centroids, dtype=np.float32)",
        "np.asarray(km.centroids, ",
        "faiss's centroids are float32 already",
    ),
    (
        KMEANS,
        "ǁAssignerǁ__init__",
        "astype(np.float64)",
        "astype(None)",
        "numpy's astype(None) is float64",
    ),
    (KMEANS, "ǁAssignerǁ__call__", "np.abs(dist[:, 0]), 1.0)", "np.abs(dist[:, 1]), 1.0)", LOOSER),
    (KMEANS, "ǁAssignerǁ__call__", "np.abs(dist[:, 0]), 1.0)", "np.abs(dist[:, 0]), 2.0)", LOOSER),
    (
        KMEANS,
        "ǁAssignerǁ__call__",
        "dist[:, 1] - dist[:, 0] <=",
        "dist[:, 1] - dist[:, 1] <=",
        LOOSER,
    ),
    (KMEANS, "ǁAssignerǁ__call__", "<= 1e-4 * scale", "<= 1.0001 * scale", LOOSER),
    (
        KMEANS,
        "ǁAssignerǁ__call__",
        "<= 1e-4 * scale",
        "< 1e-4 * scale",
        "a float32 gap exactly at the threshold: not met by these rows",
    ),
    (
        STABILITY,
        "salt_and_pepper",
        "< 0.5).to(x.dtype)",
        "<= 0.5).to(x.dtype)",
        "torch.rand draws exactly 0.5 with probability 2^-24: not in these draws",
    ),
    (STABILITY, "salt_and_pepper", ".to(x.device)", ".to(None)", DEVICE),
    (
        STABILITY,
        "shift",
        "abs(dy) >= h or abs(dx) >= w",
        "abs(dy) >= h and abs(dx) >= w",
        FULL_SHIFT,
    ),
    (STABILITY, "shift", "abs(dy) >= h or abs(dx) >= w", "abs(dy) > h or abs(dx) >= w", FULL_SHIFT),
    (STABILITY, "shift", "abs(dy) >= h or abs(dx) >= w", "abs(dy) >= h or abs(dx) > w", FULL_SHIFT),
    (STABILITY, "shift", "max(-dx, 0), max(dy, 0)", "max(-dx, 1), max(dy, 0)", CROPPED_PAD),
    (STABILITY, "shift", "max(dy, 0), max(-dy, 0))", "max(dy, 0), max(-dy, 1))", CROPPED_PAD),
    (
        STABILITY,
        "shift",
        'F.pad(x, pad, mode="constant", value=fill)',
        "F.pad(x, pad, value=fill)",
        "constant is F.pad's default mode",
    ),
    (SAMPLING, "top_k_top_p_filtering", "top_p: float = 1.0)", "top_p: float = 2.0)", P_OFF),
    (
        SAMPLING,
        "top_k_top_p_filtering",
        "top_k < V:",
        "top_k <= V:",
        "top_k = V keeps every logit (each is >= the smallest): no filter, as top_k >= V",
    ),
    (SAMPLING, "top_k_top_p_filtering", "top_k, dim=-1)", "top_k, )", DEFAULT_DIM),
    (
        SAMPLING,
        "top_k_top_p_filtering",
        "sort(logits, dim=-1,",
        "sort(logits, descending",
        DEFAULT_DIM,
    ),
    (SAMPLING, "top_k_top_p_filtering", "if top_p < 1.0:", "if top_p <= 1.0:", P_AT_ONE),
    (SAMPLING, "top_k_top_p_filtering", "if top_p < 1.0:", "if top_p < 2.0:", P_AT_ONE),
    (SAMPLING, "sample_logits", "top_p: float = 1.0,", "top_p: float = 2.0,", P_OFF),
    (SAMPLING, "_guide", "chunk(2, dim=0)", "chunk(2, )", DEFAULT_DIM),
    (SAMPLING, "prefill", "device=model.wpe.device", "device=None", DEVICE),
    (SAMPLING, "prefill", "device=model.wpe.device", "torch.long, )", DEVICE),
    (SAMPLING, "maskgit_mask", "device=tokens.device", "device=None", DEVICE),
    (SAMPLING, "maskgit_mask", "device=tokens.device", "generator=generator, )", DEVICE),
    (
        SAMPLING,
        "maskgit_mask",
        ".clamp(1, T)",
        ".clamp(None, T)",
        "cos(pi/2 r) > 0 for r < 1, so ceil(T cos) >= 1: the lower bound never binds",
    ),
    (
        SAMPLING,
        "maskgit_mask",
        ".clamp(1, T)",
        ".clamp(1, None)",
        "cos <= 1, so ceil(T cos) <= T: the upper bound never binds",
    ),
    (
        SAMPLING,
        "maskgit_mask",
        ".clamp(1, T)",
        ".clamp(1, )",
        "cos <= 1, so ceil(T cos) <= T: the upper bound never binds",
    ),
    (
        KMEANS,
        "ǁAssignerǁ__call__",
        "astype(np.float64)",
        "astype(None)",
        "numpy reads dtype None as float64",
    ),
    (
        STABILITY,
        "salt_and_pepper",
        "memory_format=torch.contiguous_format",
        "memory_format=None",
        "a memory layout only: the same values in another stride order",
    ),
)

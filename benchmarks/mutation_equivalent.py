"""Surviving mutants accepted as equivalent, each with the reason no test can tell it apart.

One row per accepted survivor: (module, function, a piece of the removed line, a piece of the added
line, why). benchmarks/mutation.py matches survivors against these rows; a survivor that matches
none is listed as unexplained. Keep rows specific: a row that matches a real gap hides it.
"""

LADDER = "digit/metrics/ladder.py"
STREAM = "another fixed random stream: the same distribution, as deterministic"
FLOAT64 = "float64 instead of float32: the same uint8 images but for rounding at half grey levels"
NO_REPLACE = "numpy reads replace=None as False: still drawn without replacement"

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
)

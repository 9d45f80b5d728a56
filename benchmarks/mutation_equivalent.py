"""Surviving mutants accepted as equivalent, each with the reason no test can tell it apart.

One row per accepted survivor: (module, function, a piece of the removed line, a piece of the added
line, why). benchmarks/mutation.py matches survivors against these rows; a survivor that matches
none is listed as unexplained. Keep rows specific: a row that matches a real gap hides it.
"""

EQUIVALENT: tuple[tuple[str, str, str, str, str], ...] = ()

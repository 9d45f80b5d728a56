"""metrics/*.json -> reports/: one markdown table (+ csv) per paper table and ablation, figures, an
index, and claims.md, which checks the paper's five claims (and a sixth, its title's thesis) against this run's numbers.

One module per kind of product: ``metrics`` (the metrics files as read, the paper's numbers),
``tables`` (every table), ``figures`` (matplotlib), ``claims`` (the verdicts) and ``write``
(``write_reports``, the `report` stage's entry point). Set and file names come from
pipeline/sets.py.
"""

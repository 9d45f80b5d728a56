"""One module per DVC stage, each run by dvc.yaml as ``python -m pipeline.stages.<name>``."""

from pipeline import warm

# `python -m pipeline.stages.<name>`: run in the warm stage server when one is listening (it has
# torch & co. imported already; pipeline/warm.py), else here, cold. A no-op on a plain import.
warm.hand_off()

"""Evaluation: the metrics behind the paper's tables, as pure functions.

- `evalnet`: the small CNN classifier that stands in for Inception-v3 offline.
- `fid`: FID / IS / KID / precision-recall through torch-fidelity, feature extractors by name.
- `probe`: the linear probe of Table 2 / Fig. 3(b), one classifier per layer.
- `stability`: perturbations and token-change / cosine measures of Table 1.
- `toy`: the appendix toy, PCA vs LDA projections under noise.

Nothing is imported here, so `import digit.metrics.<x>` pulls in only what <x> needs
(torch-fidelity only for `fid`).
"""

"""The reconstructive baseline encoder (digit.ssl.train_mae): it learns, it is deterministic, and
its masks hide exactly the requested fraction of patches."""

import torch

from digit.encoders import build_encoder
from digit.ssl import MAEConfig, patch_mask, train_mae


def images(n: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(n, 28, 28, 1, dtype=torch.uint8)
    for i in range(n):  # a bright square at a random place: structure a decoder can learn
        r, c = torch.randint(0, 18, (2,), generator=g).tolist()
        x[i, r : r + 10, c : c + 10] = 255
    return x


def trained(seed: int, epochs: int = 6) -> tuple[list[dict], torch.nn.Module]:
    torch.manual_seed(0)
    enc = build_encoder("cnn_small", in_channels=1, input_size=28, width=16)
    cfg = MAEConfig(epochs=epochs, batch_size=16, lr=3e-3, warmup_epochs=0.0, mask_ratio=0.5)
    return train_mae(enc, images(), cfg, seed, progress=False), enc


def test_mae_learns_and_is_deterministic():
    h1, e1 = trained(0)
    h2, e2 = trained(0)
    assert h1[-1]["loss"] < 0.7 * h1[0]["loss"], h1
    assert h1 == h2
    for a, b in zip(e1.state_dict().values(), e2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    h3, _ = trained(1)
    assert h3 != h1


def test_patch_mask_hides_the_requested_fraction():
    g = torch.Generator().manual_seed(0)
    m = patch_mask(5, 7, 0.5, g)
    assert m.shape == (5, 7, 7) and m.dtype == torch.bool
    assert (m.flatten(1).sum(1) == round(0.5 * 49)).all()
    assert not torch.equal(m[0], m[1])  # a new mask per image
    assert not patch_mask(2, 7, 0.0, g).any()

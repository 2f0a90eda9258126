"""Images already in compact form are not converted again (io.images.CompactImages)."""

import numpy as np
import pytest
import torch

from midas_diffusion.io import images


def test_compact_images_come_back_as_they_are_with_their_size_checked(monkeypatch):
    photo = torch.rand(3, 40, 60)
    compact = images.to_compact_tensors([photo, np.zeros((40, 60, 3), np.uint8)])
    assert isinstance(compact, images.CompactImages) and [t.dtype for t in compact] == [torch.float32, torch.uint8]
    scans = []
    monkeypatch.setattr(torch, "aminmax", lambda t: scans.append(1) or (t.min(), t.max()))
    again = images.to_compact_tensors(compact, 10_000)
    assert not scans and all(torch.equal(a, b) for a, b in zip(again, compact))  # no second conversion or range scan
    with pytest.raises(ValueError, match="over the limit"):
        images.to_compact_tensors(compact, 1000)
    assert len(images.to_compact_tensors(list(compact))) == 2 and scans == [1]  # a plain list is converted

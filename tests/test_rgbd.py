import numpy as np
import pytest
import torch

from midas_diffusion.io.rgbd import (
    as_arrays,
    disparity_to_depth,
    export_glb,
    export_ply,
    export_side_by_side,
    focal_length,
    unproject,
    unproject_equirectangular,
)
from midas_diffusion.io.writers import read_uint16_png, write_png16

pytest.importorskip("trimesh")


def _plane_disparity(h=40, w=64, fov=60.0, near=1.0, far=10.0):
    """The disparity map of a tilted plane n.p = d seen by the pinhole camera."""
    f = focal_length(h, w, fov)
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - (w - 1) / 2) / f, -(v - (h - 1) / 2) / f, -np.ones_like(u)], axis=-1)
    normal, offset = np.array([0.2, 0.3, -1.0]), 4.0
    z = offset / (rays @ normal)  # distance along -Z for each pixel
    disparity = (1 / z - 1 / far) / (1 / near - 1 / far)
    return disparity.astype(np.float32), normal, offset


def test_unprojected_plane_is_a_plane():
    disparity, normal, offset = _plane_disparity()
    points = unproject(disparity_to_depth(disparity, 1.0, 10.0), 60.0).reshape(-1, 3).astype(np.float64)
    residual = points @ normal - offset
    assert np.abs(residual).max() < 1e-3 * offset


def test_ply_and_glb_read_back_by_independent_readers(tmp_path):
    from plyfile import PlyData
    from pygltflib import GLTF2

    disparity, _, _ = _plane_disparity()
    rgb = np.random.default_rng(0).random((40, 64, 3)).astype(np.float32)
    export_ply(tmp_path / "cloud.ply", rgb, disparity)
    ply = PlyData.read(str(tmp_path / "cloud.ply"))
    assert ply["vertex"].count == 40 * 64
    assert {"x", "y", "z", "red", "green", "blue"} <= set(ply["vertex"].data.dtype.names)
    export_glb(tmp_path / "mesh.glb", rgb, disparity)
    gltf = GLTF2().load(str(tmp_path / "mesh.glb"))
    prim = gltf.meshes[0].primitives[0]
    assert gltf.accessors[prim.attributes.POSITION].count == 40 * 64
    assert gltf.accessors[prim.indices].count == 2 * 39 * 63 * 3  # a smooth plane: no triangle cut


def test_depth_jumps_are_not_bridged(tmp_path):
    from pygltflib import GLTF2

    disparity = np.full((20, 30), 0.9, np.float32)
    disparity[:, 15:] = 0.1  # a step: near left half, far right half
    rgb = np.zeros((20, 30, 3), np.float32)
    export_glb(tmp_path / "step.glb", rgb, disparity, max_depth_jump=0.1)
    gltf = GLTF2().load(str(tmp_path / "step.glb"))
    triangles = gltf.accessors[gltf.meshes[0].primitives[0].indices].count // 3
    assert triangles == 2 * 19 * 29 - 2 * 19  # the column of quads across the step is cut


def test_panorama_unprojection_is_at_the_given_distance():
    depth = np.full((32, 64), 3.0, np.float32)
    points = unproject_equirectangular(depth)
    assert np.allclose(np.linalg.norm(points, axis=-1), 3.0, atol=1e-5)


def test_bad_rgbd_input(tmp_path):
    rgb = np.zeros((10, 12, 3), np.float32)
    with pytest.raises(ValueError, match="10x12 but disparity is 10x13"):
        export_ply(tmp_path / "a.ply", rgb, np.zeros((10, 13), np.float32))
    bad = np.zeros((10, 12), np.float32)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        export_glb(tmp_path / "a.glb", rgb, bad)
    checker = np.indices((10, 12)).sum(0) % 2 * 0.9  # every quad spans a big jump
    with pytest.raises(ValueError, match="mesh would be empty, nothing was written"):
        export_glb(tmp_path / "empty.glb", rgb, checker.astype(np.float32), max_depth_jump=0.05)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="near < far"):
        disparity_to_depth(np.zeros((2, 2)), near=5, far=1)


def test_side_by_side_and_png16(tmp_path):
    from PIL import Image

    rgb = torch.rand(3, 16, 24)
    disparity = torch.linspace(0, 1, 16 * 24).reshape(16, 24)
    export_side_by_side(tmp_path / "sbs.png", rgb, disparity)
    assert Image.open(tmp_path / "sbs.png").size == (48, 16)
    write_png16(tmp_path / "d.png", disparity)
    assert np.array_equal(read_uint16_png(tmp_path / "d.png"), np.round(disparity.numpy() * 65535).astype(np.uint16))
    a, d = as_arrays(rgb, disparity)
    assert a.shape == (16, 24, 3) and d.shape == (16, 24)

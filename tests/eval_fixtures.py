"""Tiny synthetic copies of the evaluation datasets, written byte by byte in each dataset's own
format (independently of the readers under test). Every builder returns the ground truth it wrote
(metres, 0 = none) keyed by the sample id the reader should report."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 24, 32


def rgb(rng, h=H, w=W) -> np.ndarray:
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def depth(rng, low=0.5, high=8.0, h=H, w=W) -> np.ndarray:
    d = rng.uniform(low, high, (h, w))
    d[0, :3] = 0  # a few pixels without measurement
    return d


def png16(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(path)


def save_rgb(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")


def kitti(root: Path, n=3, listing=True, seed=0) -> dict:
    rng, truth = np.random.default_rng(seed), {}
    lines = []
    for i in range(n):
        d = np.round(depth(rng, 2, 70) * 256) / 256
        if listing:
            image = f"2011_09_26/drive_0002_sync/image_02/data/{i:010d}.png"
            gt = f"drive_0002_sync/proj_depth/groundtruth/image_02/{i:010d}.png"
            lines.append(f"{image} {gt} 721.5377")
            ident = image
        else:
            image = f"image/2011_09_26_drive_0002_sync_image_{i:010d}_image_02.png"
            gt = f"groundtruth_depth/2011_09_26_drive_0002_sync_groundtruth_depth_{i:010d}_image_02.png"
            ident = Path(image).name
        save_rgb(root / image, rgb(rng))
        png16(root / gt, np.round(d * 256))
        truth[ident] = d
    if listing:
        lines.append("2011_09_26/drive_0002_sync/image_02/data/9999999999.png None 721.5377")
        (root / "eigen_test_files_with_gt.txt").write_text("\n".join(lines) + "\n")
    return truth


def tum(root: Path, n=3, depth_first=False, seed=0) -> dict:
    rng, truth = np.random.default_rng(seed), {}
    seq = root / "rgbd_dataset_freiburg2_desk"
    lines = ["# timestamp rgb timestamp depth"]
    for i in range(n):
        t = 1311868164.0 + i / 30
        d = np.round(depth(rng, 0.5, 9) * 5000) / 5000
        save_rgb(seq / "rgb" / f"{t:.6f}.png", rgb(rng))
        png16(seq / "depth" / f"{t + 0.01:.6f}.png", np.round(d * 5000))
        a, b = f"{t:.6f} rgb/{t:.6f}.png", f"{t + 0.01:.6f} depth/{t + 0.01:.6f}.png"
        lines.append(f"{b} {a}" if depth_first else f"{a} {b}")
        truth[f"rgbd_dataset_freiburg2_desk/rgb/{t:.6f}.png"] = d
    (seq / "associations.txt").write_text("\n".join(lines) + "\n")
    return truth


def eth3d(root: Path, n=3, seed=0) -> dict:
    rng, truth = np.random.default_rng(seed), {}
    for i in range(n):
        scene = root / ("courtyard" if i % 2 == 0 else "pipes")
        name = f"DSC_{i:04d}.JPG"
        d = depth(rng, 1, 60).astype(np.float32)
        stored = d.copy()
        stored[0, :3] = np.inf  # ETH3D marks missing depth with inf
        save_rgb(scene / "images" / "dslr_images" / name, rgb(rng))  # PNG bytes in a .JPG name: PIL reads content
        target = scene / "ground_truth_depth" / "dslr_images" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        stored.astype("<f4").tofile(target)
        truth[f"{scene.name}/images/dslr_images/{name}"] = d
    return truth


def dpt_bytes(d: np.ndarray, tag: float = 202021.25) -> bytes:
    h, w = d.shape
    return struct.pack("<f", tag) + struct.pack("<ii", w, h) + np.asarray(d, "<f4").tobytes()


def sintel(root: Path, n=3, seed=0) -> dict:
    rng, truth = np.random.default_rng(seed), {}
    for i in range(n):
        name = f"alley_1/frame_{i + 1:04d}"
        d = depth(rng, 1, 60).astype(np.float32)
        save_rgb(root / "training" / "final" / f"{name}.png", rgb(rng))
        target = root / "training" / "depth" / f"{name}.dpt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(dpt_bytes(d))
        truth[f"{name}.png"] = d
    return truth


def diw(root: Path, n=3, seed=0) -> dict:
    """One ordinal pair per image; truth: id -> (y_A, x_A, y_B, x_B, relation), 0-based."""
    rng, truth, lines = np.random.default_rng(seed), {}, []
    for i in range(n):
        name = f"DIW_test/{i:05d}.thumb"
        save_rgb(root / name, rgb(rng))
        y_a, x_a, y_b, x_b = int(rng.integers(1, H + 1)), int(rng.integers(1, W + 1)), int(rng.integers(1, H + 1)), int(
            rng.integers(1, W + 1))
        rel = ">" if i % 2 else "<"
        lines += [f"./{name}", f"{y_a},{x_a},{y_b},{x_b},{rel},{W},{H}"]
        truth[name] = (y_a - 1, x_a - 1, y_b - 1, x_b - 1, 1 if rel == ">" else -1)
    (root / "DIW_test.csv").write_text("\n".join(lines) + "\n")
    return truth


def nyu_exported(root: Path, n=3, npy=False, seed=0) -> dict:
    rng, truth = np.random.default_rng(seed), {}
    for i in range(n):
        folder = root / "official_splits" / "test" / ("bathroom" if i % 2 else "kitchen")
        number = f"{i + 45:05d}"
        d = np.round(depth(rng, 0.7, 9.9) * 1000) / 1000
        save_rgb(folder / f"rgb_{number}.jpg", rgb(rng))
        if npy:
            np.save(folder / f"depth_{number}.npy", d.astype(np.float32))
        else:
            png16(folder / f"sync_depth_{number}.png", np.round(d * 1000))
        truth[f"official_splits/test/{folder.name}/rgb_{number}.jpg"] = d
    return truth


def folder(root: Path, n=3, kind="png", seed=0) -> dict:
    rng, truth = np.random.default_rng(seed), {}
    for i in range(n):
        d = np.round(depth(rng, 0.3, 6) * 1000) / 1000
        save_rgb(root / "rgb" / "room" / f"shot{i}.png", rgb(rng))
        target = root / "depth" / "room" / f"shot{i}.{kind}"
        if kind == "png":
            png16(target, np.round(d * 1000))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            np.save(target, d.astype(np.float32))
        truth[f"room/shot{i}.png"] = d
    return truth


BUILDERS = {"kitti": kitti, "tum": tum, "eth3d": eth3d, "sintel": sintel, "diw": diw, "nyu": nyu_exported,
            "folder": folder}

"""Readers for local copies of the evaluation datasets (the user downloads them; nothing is fetched).

Each reader lists its samples cheaply (``samples()``: ids and paths, nothing decoded) and loads
one on demand (``load(ref)``), so an evaluation can skip what it has already scored. The layouts:

* ``nyu``    NYU Depth v2: the labeled ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5, read with
  ``h5py``; ``test_indices.txt`` beside it, 1-based like ``splits.mat``'s ``testNdxs``, selects the
  test split), or an exported split: ``rgb_NNNNN.jpg|png`` with ``sync_depth_NNNNN.png`` (16-bit,
  millimetres) or ``depth_NNNNN.npy`` (metres) beside it, in any sub-folders.
* ``kitti``  KITTI (Eigen split): ``eigen_test_files_with_gt.txt`` lines ``image depth [focal]``
  relative to the root (``None`` depth lines are skipped), or the depth-selection layout
  ``image/*_image_*.png`` + ``groundtruth_depth/*_groundtruth_depth_*.png``. Depth: 16-bit PNG / 256.
* ``eth3d``  ETH3D: ``SCENE/images/dslr_images/NAME`` + ``SCENE/ground_truth_depth/dslr_images/NAME``
  (raw float32).
* ``sintel`` MPI Sintel: ``[training/]final|clean/SCENE/frame_NNNN.png`` + ``[training/]depth/SCENE/frame_NNNN.dpt``.
* ``tum``    TUM RGB-D: sequence folders with ``rgb/``, ``depth/`` (16-bit PNG / 5000) and
  ``associations.txt``.
* ``diw``    Depth in the Wild: ``DIW_test.csv`` (or ``DIW_Annotations/DIW_test.csv``) and the images
  it names, relative to the root.
* ``folder`` any RGB-D data: ``rgb/`` (or ``image/``/``images/``) and ``depth/`` with matching relative
  names; depth ``.png`` (16-bit, millimetres unless ``depth_scale``), ``.npy``/``.pfm`` (metres unless
  ``depth_scale``) or ``.exr``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ...io.images import IMAGE_SUFFIXES
from .formats import (
    LayoutError,
    image_size,
    is_hdf5,
    parse_diw_csv,
    parse_tum_associations,
    read_depth_file,
    read_dpt,
    read_png16_metres,
    read_raw_float32,
    read_rgb,
)



@dataclass(frozen=True)
class SampleRef:
    """One sample, not loaded: ``id`` is unique in its dataset and stable between runs."""

    id: str
    image: Optional[Path] = None
    target: Optional[Path] = None
    index: int = -1
    pairs: Tuple[int, ...] = ()
    size: Tuple[int, int] = (0, 0)


@dataclass(frozen=True, eq=False)
class Sample:
    """A loaded sample: ``image`` (H,W,3) uint8; ``depth`` (H,W) float32 metres, 0 = no
    measurement (``None`` for ordinal data); ``pairs`` (N,5) ``y_A, x_A, y_B, x_B, relation``."""

    id: str
    image: np.ndarray
    depth: Optional[np.ndarray] = None
    pairs: Optional[np.ndarray] = None


class DepthDataset:
    """Base class: ``name``, ``layout`` (what the reader expects, for messages), ``samples()``, ``load()``."""

    name = ""
    layout = ""

    def __init__(self, root: os.PathLike):
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise LayoutError(f"{self.name}: {self.root} does not exist; expected {self.layout}")

    def samples(self) -> List[SampleRef]:
        raise NotImplementedError

    def load(self, ref: SampleRef) -> Sample:
        raise NotImplementedError

    def _refuse(self, detail: str) -> LayoutError:
        return LayoutError(f"{self.name}: {detail}; expected {self.layout}")

    def _found(self, refs: List[SampleRef], nothing: str) -> List[SampleRef]:
        """``refs``, or the layout error ``nothing`` (what was not found) when there are none."""
        if not refs:
            raise self._refuse(nothing)
        return refs

    def _with_image(self, ref: SampleRef, depth: np.ndarray) -> Sample:
        """The sample of ``ref``'s image and ``depth``, which must have the image's size."""
        image = read_rgb(ref.image)
        if image.shape[:2] != depth.shape:
            raise self._refuse(f"{ref.image} is {image.shape[1]}x{image.shape[0]} but its depth {ref.target or ''} "
                               f"is {depth.shape[1]}x{depth.shape[0]}")
        return Sample(ref.id, image, depth)


class Png16DepthDataset(DepthDataset):
    """A dataset whose depth maps are 16-bit PNGs in steps of ``metres_per_unit`` (0 = no measurement);
    ``depth_file`` describes them for the error on another kind of file."""

    metres_per_unit = 1.0
    depth_file = ""

    def load(self, ref: SampleRef) -> Sample:
        return self._with_image(ref, read_png16_metres(ref.target, self.metres_per_unit, self.depth_file))


def _relative_id(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _images_in(folder: Path) -> List[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


# -------------------------------------------------------------------------------------------- NYU
class NYUMat(DepthDataset):
    name = "nyu"
    layout = ("nyu_depth_v2_labeled.mat (MATLAB v7.3 / HDF5) with 'images' (N,3,640,480) uint8 and 'depths' "
              "(N,640,480) float32 metres, optionally test_indices.txt (1-based indices, one per line)")

    def __init__(self, root: os.PathLike):
        super().__init__(root)
        self.path = self.root if self.root.is_file() else self.root / "nyu_depth_v2_labeled.mat"
        if not self.path.is_file():
            raise self._refuse(f"no {self.path.name} in {self.root}")
        if not is_hdf5(self.path):
            raise self._refuse(f"{self.path} is not an HDF5 file (a MATLAB v5 .mat, or not a .mat at all)")
        self._file = None

    def _open(self):
        if self._file is None:
            try:
                import h5py
            except ImportError:
                raise LayoutError(f"reading {self.path.name} needs h5py: pip install h5py (or use an exported "
                                  "split: rgb_NNNNN.jpg + sync_depth_NNNNN.png)") from None
            f = h5py.File(self.path, "r")
            images, depths = f.get("images"), f.get("depths")
            if images is None or depths is None:
                f.close()
                raise self._refuse(f"{self.path} has no 'images' and 'depths' datasets")
            if images.ndim != 4 or images.shape[1] != 3 or depths.ndim != 3 or depths.shape[1:] != images.shape[2:] \
                    or len(depths) != len(images):
                f.close()
                raise self._refuse(f"{self.path} has images {images.shape} and depths {depths.shape}")
            self._file = f
        return self._file

    def samples(self) -> List[SampleRef]:
        count = len(self._open()["images"])
        split = self.path.parent / "test_indices.txt"
        if split.is_file():
            try:
                indices = [int(line) for line in split.read_text().split()]
            except ValueError:
                raise self._refuse(f"{split} holds something other than integers") from None
            bad = [i for i in indices if not 1 <= i <= count]
            if bad:
                raise self._refuse(f"{split} names index {bad[0]} outside 1..{count}")
        else:
            indices = list(range(1, count + 1))
        return [SampleRef(id=f"{i:04d}", index=i - 1) for i in indices]

    def load(self, ref: SampleRef) -> Sample:
        f = self._open()
        image = np.ascontiguousarray(np.asarray(f["images"][ref.index]).transpose(2, 1, 0))
        depth = np.ascontiguousarray(np.asarray(f["depths"][ref.index], dtype=np.float32).T)
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
        return Sample(ref.id, image.astype(np.uint8), depth)


class NYUExported(DepthDataset):
    name = "nyu"
    layout = ("an exported NYU split: rgb_NNNNN.jpg|png with sync_depth_NNNNN.png (16-bit, millimetres) or "
              "depth_NNNNN.npy (metres) beside it")

    def samples(self) -> List[SampleRef]:
        refs = []
        for image in _images_in(self.root):
            if not image.stem.startswith("rgb_"):
                continue
            number = image.stem[len("rgb_"):]
            candidates = [image.with_name(f"sync_depth_{number}.png"), image.with_name(f"depth_{number}.npy")]
            target = next((c for c in candidates if c.is_file()), None)
            if target is None:
                raise self._refuse(f"{image} has neither {candidates[0].name} nor {candidates[1].name} beside it")
            refs.append(SampleRef(id=_relative_id(image, self.root), image=image, target=target))
        return self._found(refs, f"no rgb_*.jpg/png files under {self.root}")

    def load(self, ref: SampleRef) -> Sample:
        if ref.target.suffix == ".png":
            depth = read_png16_metres(ref.target, 0.001, "a 16-bit PNG in millimetres (NYU sync_depth_*.png)")
        else:
            depth = read_depth_file(ref.target, 1.0)
        return self._with_image(ref, depth)


def open_nyu(root: os.PathLike) -> DepthDataset:
    root = Path(root).expanduser()
    if root.suffix == ".mat" or (root / "nyu_depth_v2_labeled.mat").is_file():
        return NYUMat(root)
    if root.is_dir() and any(root.rglob("rgb_*")):
        return NYUExported(root)
    raise LayoutError(f"nyu: nothing usable in {root}; expected {NYUMat.layout}, or {NYUExported.layout}")


# ------------------------------------------------------------------------------------------ KITTI
class KITTI(Png16DepthDataset):
    name = "kitti"
    metres_per_unit = 1 / 256
    depth_file = "a KITTI 16-bit PNG depth map (metres x 256, 0 = no measurement)"
    layout = ("KITTI with 16-bit PNG depth (metres x 256, 0 = none): eigen_test_files_with_gt.txt lines "
              "'IMAGE DEPTH [FOCAL]' relative to the root, or image/*_image_*.png + "
              "groundtruth_depth/*_groundtruth_depth_*.png (the depth-selection layout)")
    LIST = "eigen_test_files_with_gt.txt"

    def samples(self) -> List[SampleRef]:
        listing = self.root / self.LIST
        if listing.is_file():
            return self._from_list(listing)
        if (self.root / "image").is_dir() and (self.root / "groundtruth_depth").is_dir():
            return self._from_selection()
        raise self._refuse(f"{self.root} has neither {self.LIST} nor image/ + groundtruth_depth/")

    def _from_list(self, listing: Path) -> List[SampleRef]:
        refs = []
        for number, line in enumerate(listing.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) not in (2, 3):
                raise self._refuse(f"{listing}:{number} has {len(parts)} fields")
            if parts[1] == "None":
                continue
            image, target = self.root / parts[0], self.root / parts[1]
            for p in (image, target):
                if not p.is_file():
                    raise self._refuse(f"{listing}:{number} names {p}, which does not exist")
            refs.append(SampleRef(id=parts[0], image=image, target=target))
        return self._found(refs, f"{listing} lists no image with ground truth")

    def _from_selection(self) -> List[SampleRef]:
        refs = []
        for image in sorted((self.root / "image").glob("*.png")):
            if "_image_" not in image.name:
                raise self._refuse(f"{image.name} does not contain '_image_'")
            target = self.root / "groundtruth_depth" / image.name.replace("_image_", "_groundtruth_depth_", 1)
            if not target.is_file():
                raise self._refuse(f"{image.name} has no {target.name} in groundtruth_depth/")
            refs.append(SampleRef(id=image.name, image=image, target=target))
        return self._found(refs, f"no .png images in {self.root / 'image'}")



# ------------------------------------------------------------------------------------------ ETH3D
class ETH3D(DepthDataset):
    name = "eth3d"
    layout = ("ETH3D: SCENE/images/dslr_images/NAME.JPG with SCENE/ground_truth_depth/dslr_images/NAME.JPG "
              "(raw little-endian float32, row-major, the image's size)")

    def samples(self) -> List[SampleRef]:
        scenes = [self.root] if (self.root / "images").is_dir() else sorted(p for p in self.root.iterdir() if p.is_dir())
        refs = []
        for scene in scenes:
            images = scene / "images" / "dslr_images"
            depths = scene / "ground_truth_depth" / "dslr_images"
            if not images.is_dir() and not depths.is_dir():
                continue
            if not (images.is_dir() and depths.is_dir()):
                raise self._refuse(f"{scene.name} lacks images/dslr_images or ground_truth_depth/dslr_images")
            for image in _images_in(images):
                target = depths / image.name
                if not target.is_file():
                    raise self._refuse(f"{image} has no ground truth {target}")
                refs.append(SampleRef(id=_relative_id(image, self.root), image=image, target=target))
        return self._found(refs, f"no SCENE/images/dslr_images/* under {self.root}")

    def load(self, ref: SampleRef) -> Sample:
        height, width = image_size(ref.image)
        depth = read_raw_float32(ref.target, height, width)
        return self._with_image(ref, depth)


# ----------------------------------------------------------------------------------------- Sintel
class Sintel(DepthDataset):
    name = "sintel"
    layout = "MPI Sintel: [training/]final/SCENE/frame_NNNN.png with [training/]depth/SCENE/frame_NNNN.dpt"

    def __init__(self, root: os.PathLike, render_pass: str = "final"):
        super().__init__(root)
        if render_pass not in ("final", "clean"):
            raise ValueError(f"render_pass must be 'final' or 'clean', got {render_pass!r}")
        self.render_pass = render_pass

    def samples(self) -> List[SampleRef]:
        base = self.root / "training" if (self.root / "training").is_dir() else self.root
        images, depths = base / self.render_pass, base / "depth"
        if not images.is_dir() or not depths.is_dir():
            raise self._refuse(f"{base} lacks {self.render_pass}/ or depth/")
        refs = []
        for image in _images_in(images):
            target = depths / image.relative_to(images).with_suffix(".dpt")
            if not target.is_file():
                raise self._refuse(f"{image} has no depth {target}")
            refs.append(SampleRef(id=image.relative_to(images).as_posix(), image=image, target=target))
        return self._found(refs, f"no frames in {images}")

    def load(self, ref: SampleRef) -> Sample:
        depth = read_dpt(ref.target)
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
        return self._with_image(ref, depth)


# -------------------------------------------------------------------------------------------- TUM
class TUM(Png16DepthDataset):
    name = "tum"
    metres_per_unit = 1 / 5000
    depth_file = "a TUM 16-bit PNG depth map (metres x 5000, 0 = no measurement)"
    layout = ("TUM RGB-D sequences: rgb/, depth/ (16-bit PNG, metres x 5000) and associations.txt "
              "('time rgb/NAME.png time depth/NAME.png' lines, from associate.py)")
    NAMES = ("associations.txt", "associate.txt", "assoc.txt")

    def samples(self) -> List[SampleRef]:
        sequences = [self.root] if (self.root / "rgb").is_dir() else sorted(p for p in self.root.iterdir() if p.is_dir())
        refs = []
        for seq in sequences:
            if not (seq / "rgb").is_dir() and not (seq / "depth").is_dir():
                continue
            listing = next((seq / n for n in self.NAMES if (seq / n).is_file()), None)
            if listing is None:
                raise self._refuse(f"{seq.name} has no associations.txt; make it with the benchmark's tool: "
                                   "python associate.py rgb.txt depth.txt > associations.txt")
            for rgb, depth in parse_tum_associations(listing):
                image, target = seq / rgb, seq / depth
                for p in (image, target):
                    if not p.is_file():
                        raise self._refuse(f"{listing} names {p}, which does not exist")
                refs.append(SampleRef(id=_relative_id(image, self.root) if seq != self.root else rgb,
                                      image=image, target=target))
        return self._found(refs, f"no sequence folder with rgb/ and depth/ in {self.root}")



# -------------------------------------------------------------------------------------------- DIW
class DIW(DepthDataset):
    name = "diw"
    layout = ("DIW: DIW_test.csv (or DIW_Annotations/DIW_test.csv): an image path line (relative to the root), "
              "then 'y_A,x_A,y_B,x_B,<or>,width,height'")

    def _csv(self) -> Path:
        if self.root.is_file():
            return self.root
        for candidate in (self.root / "DIW_test.csv", self.root / "DIW_Annotations" / "DIW_test.csv"):
            if candidate.is_file():
                return candidate
        found = sorted(self.root.glob("*.csv"))
        if len(found) == 1:
            return found[0]
        raise self._refuse(f"no DIW_test.csv in {self.root}")

    def samples(self) -> List[SampleRef]:
        csv = self._csv()
        base = csv.parent if self.root.is_file() else self.root
        refs, seen = [], {}
        for image, pair, size in parse_diw_csv(csv):
            name = image[2:] if image.startswith("./") else image
            path = Path(name) if Path(name).is_absolute() else base / name
            if not path.is_file() and (csv.parent / name).is_file():
                path = csv.parent / name
            if not path.is_file():
                raise self._refuse(f"{csv} names {image}, which is neither under {base} nor beside the csv")
            seen[name] = seen.get(name, 0) + 1
            ident = name if seen[name] == 1 else f"{name}#{seen[name]}"
            refs.append(SampleRef(id=ident, image=path, pairs=pair, size=size))
        return refs

    def load(self, ref: SampleRef) -> Sample:
        image = read_rgb(ref.image)
        height, width = image.shape[:2]
        y_a, x_a, y_b, x_b, relation = ref.pairs
        csv_w, csv_h = ref.size
        if csv_w > 0 and csv_h > 0 and (csv_w, csv_h) != (width, height):  # annotated at another size
            sy, sx = height / csv_h, width / csv_w
            y_a, y_b = int((y_a + 0.5) * sy), int((y_b + 0.5) * sy)
            x_a, x_b = int((x_a + 0.5) * sx), int((x_b + 0.5) * sx)
        ys = np.clip([y_a, y_b], 0, height - 1)
        xs = np.clip([x_a, x_b], 0, width - 1)
        pairs = np.array([[ys[0], xs[0], ys[1], xs[1], relation]], dtype=np.int64)
        return Sample(ref.id, image, pairs=pairs)


# ----------------------------------------------------------------------------------------- folder
class Folder(DepthDataset):
    name = "folder"
    layout = ("rgb/ (or image/, images/) and depth/ with matching relative names; depth .png (16-bit, millimetres "
              "unless --depth-scale), .npy/.pfm (metres unless --depth-scale) or .exr")
    DEPTH_SUFFIXES = (".png", ".npy", ".pfm", ".exr")

    def __init__(self, root: os.PathLike, depth_scale: Optional[float] = None):
        super().__init__(root)
        if depth_scale is not None and not depth_scale > 0:
            raise ValueError(f"depth_scale must be positive (metres per stored unit), got {depth_scale}")
        self.depth_scale = depth_scale

    def samples(self) -> List[SampleRef]:
        images = next((self.root / n for n in ("rgb", "image", "images") if (self.root / n).is_dir()), None)
        depths = self.root / "depth"
        if images is None or not depths.is_dir():
            raise self._refuse(f"{self.root} lacks rgb/ (or image/, images/) or depth/")
        by_stem: Dict[str, Path] = {}
        for p in sorted(depths.rglob("*")):
            if p.is_file() and p.suffix.lower() in self.DEPTH_SUFFIXES:
                by_stem.setdefault(p.relative_to(depths).with_suffix("").as_posix(), p)
        refs = []
        for image in _images_in(images):
            key = image.relative_to(images).with_suffix("").as_posix()
            if key not in by_stem:
                raise self._refuse(f"{image} has no depth/{key}{{.png,.npy,.pfm,.exr}}")
            refs.append(SampleRef(id=image.relative_to(images).as_posix(), image=image, target=by_stem[key]))
        return self._found(refs, f"no images in {images}")

    def load(self, ref: SampleRef) -> Sample:
        return self._with_image(ref, read_depth_file(ref.target, self.depth_scale))

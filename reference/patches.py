r"""Natural-image patches whitened as in the V1 paper's code (docs/sparse.md).

Each image (grey levels, float64) has its mean removed and is filtered in the Fourier domain by

.. math:: W(\rho) = \rho \exp\left(-(\rho / f_0)^4\right),

with ``rho`` the radial frequency; in cycles per image of a square ``S x S`` picture the paper
uses ``f0 = 0.4 S``. This module measures ``rho`` in cycles per *pixel* (so ``f0 = 0.4``, the same
cut-off for any image size and aspect ratio); the two differ by the constant factor ``S``, which
the variance normalisation removes. All whitened images are then scaled together so that their
pooled pixel variance is ``0.1``. Patches (``size x size``, default 16) are cut at random
positions (seeded) and have their own mean removed.

Images come from scikit-image's bundled photographs (optional extra ``images``) or from any
folder of the user's images.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from .validation import as_float_array, check_positive_int

__all__ = [
    "PatchStream",
    "SKIMAGE_IMAGES",
    "extract_patches",
    "load_folder",
    "load_skimage",
    "natural_images",
    "natural_patches",
    "whiten",
    "whiten_images",
    "whitening_filter",
]

#: scikit-image's bundled photographs used by default: textures first, then natural scenes.
SKIMAGE_IMAGES = ("grass", "gravel", "brick", "camera", "chelsea", "coffee", "rocket", "astronaut")

_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm", ".gif")


def _to_grey(img) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if img.ndim == 3 and img.shape[2] == 3:
        img = img.astype(np.float64) @ np.array([0.2125, 0.7154, 0.0721])  # ITU-R 709 luminance
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D (grey) or RGB(A), found shape {img.shape}")
    return np.asarray(img, dtype=np.float64)


def load_skimage(names=SKIMAGE_IMAGES) -> list[np.ndarray]:
    """scikit-image's bundled photographs as grey float64 arrays (needs ``scikit-image``)."""
    try:
        import skimage.data as data
    except ImportError:
        raise ImportError(
            "natural images need the package 'scikit-image' (pip install 'qubo-reference[images]'), "
            "or pass a folder of your own images"
        ) from None
    out = []
    for name in names:
        fn = getattr(data, str(name), None)
        if fn is None:
            raise ValueError(f"names must be scikit-image data functions, found {name!r}")
        out.append(_to_grey(fn()))
    return out


def load_folder(folder) -> list[np.ndarray]:
    """Every image file in ``folder`` (sorted by name) as a grey float64 array."""
    if not os.path.isdir(folder):
        raise ValueError(f"folder must be an existing directory, found {folder!r}")
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(_EXTENSIONS))
    if not files:
        raise ValueError(f"folder {folder!r} holds no image file (extensions {list(_EXTENSIONS)})")
    try:
        from imageio.v3 import imread
    except ImportError:
        try:
            from skimage.io import imread
        except ImportError:
            raise ImportError(
                "reading image files needs the package 'scikit-image' (or 'imageio'): "
                "pip install 'qubo-reference[images]'"
            ) from None
    return [_to_grey(imread(os.path.join(folder, f))) for f in files]


def natural_images(folder=None) -> list[np.ndarray]:
    """The user's ``folder`` of images if given, else scikit-image's photographs."""
    if folder is not None:
        return load_folder(folder)
    try:
        return load_skimage()
    except ImportError:
        raise ImportError(
            "no natural images available: install the package 'scikit-image' "
            "(pip install 'qubo-reference[images]') or pass folder=<a directory of images>"
        ) from None


def whitening_filter(shape, f0: float = 0.4) -> np.ndarray:
    """``rho exp(-(rho/f0)^4)`` on the FFT grid of ``shape``, ``rho`` in cycles per pixel."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    rho = np.sqrt(fx * fx + fy * fy)
    return rho * np.exp(-((rho / f0) ** 4))


def whiten(image, f0: float = 0.4) -> np.ndarray:
    """One image, mean removed, filtered by :func:`whitening_filter` (no variance scaling)."""
    img = as_float_array(image, "image", ndim=2)
    img = img - img.mean()
    return np.real(np.fft.ifft2(np.fft.fft2(img) * whitening_filter(img.shape, f0)))


def whiten_images(images, variance: float = 0.1, f0: float = 0.4) -> list[np.ndarray]:
    """Whiten every image and scale them together to a pooled pixel variance of ``variance``."""
    if len(images) == 0:
        raise ValueError("images must hold at least one image, found 0")
    white = [whiten(im, f0) for im in images]
    pooled = np.concatenate([w.ravel() for w in white])
    var = float(np.var(pooled))
    if var == 0:
        raise ValueError("images must not all be constant (the whitened variance is 0)")
    s = np.sqrt(variance / var)
    return [w * s for w in white]


def extract_patches(images, n_patches: int, size: int = 16, seed=0, return_positions: bool = False):
    """``n_patches`` random ``size x size`` patches, flattened row-major, each with its mean removed.

    Images are drawn in proportion to their number of patch positions.

    Returns
    -------
    ndarray of shape (n_patches, size*size), and with ``return_positions`` an int array of
    shape (n_patches, 3): image index, top row, left column.
    """
    n_patches = check_positive_int(n_patches, "n_patches")
    size = check_positive_int(size, "size")
    if len(images) == 0:
        raise ValueError("images must hold at least one image, found 0")
    counts = np.array([max(0, im.shape[0] - size + 1) * max(0, im.shape[1] - size + 1) for im in images], dtype=float)
    if counts.sum() == 0:
        side = max(min(im.shape) for im in images)
        raise ValueError(f"size must be <= the smallest image side ({side}) of at least one image, found {size}")
    rng = np.random.default_rng(seed)
    which = rng.choice(len(images), size=n_patches, p=counts / counts.sum())
    out = np.empty((n_patches, size * size))
    pos = np.empty((n_patches, 3), dtype=np.int64)
    for k in range(len(images)):
        idx = np.flatnonzero(which == k)
        if idx.size == 0:
            continue
        im = images[k]
        r = rng.integers(0, im.shape[0] - size + 1, size=idx.size)
        c = rng.integers(0, im.shape[1] - size + 1, size=idx.size)
        win = np.lib.stride_tricks.sliding_window_view(im, (size, size))
        out[idx] = win[r, c].reshape(idx.size, -1)
        pos[idx] = np.stack([np.full(idx.size, k), r, c], axis=1)
    out -= out.mean(axis=1, keepdims=True)
    return (out, pos) if return_positions else out


def natural_patches(n_patches: int, size: int = 16, seed=0, folder=None, whitened: bool = True,
                    variance: float = 0.1) -> np.ndarray:
    """Patches of whitened natural images, the V1 paper's training data (shape (n_patches, size^2))."""
    images = natural_images(folder)
    if whitened:
        images = whiten_images(images, variance)
    return extract_patches(images, n_patches, size, seed)


class PatchStream:
    """``n_patches`` patches of ``images`` made on demand, without holding them all in memory.

    Patch ``i`` belongs to block ``i // block``; block ``j`` is
    ``extract_patches(images, block, size, seed=(seed, j))``, so any range of rows is the same
    whichever way it is read (the V1 paper's 1e6 presentations are 2 GB as float64).
    ``fingerprint`` identifies the images and settings (a checkpoint records it).
    """

    def __init__(self, images, n_patches: int, size: int = 16, seed=0, block: int = 250):
        if len(images) == 0:
            raise ValueError("images must hold at least one image, found 0")
        self.images = [as_float_array(im, "images", ndim=2) for im in images]
        self.n_patches = check_positive_int(n_patches, "n_patches")
        self.size = check_positive_int(size, "size")
        self.block = check_positive_int(block, "block")
        self.seed = seed
        self.n_features = self.size * self.size
        h = hashlib.sha256()
        for im in self.images:
            h.update(str(im.shape).encode())
            h.update(np.ascontiguousarray(im).tobytes())
        h.update(repr((self.size, self.block, seed)).encode())
        self.fingerprint = h.hexdigest()

    def __len__(self) -> int:
        return self.n_patches

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Patches ``start .. stop - 1`` as an array of shape (stop - start, size^2)."""
        if not 0 <= start <= stop <= self.n_patches:
            raise ValueError(f"rows must satisfy 0 <= start <= stop <= {self.n_patches}, found {start}, {stop}")
        parts = []
        for j in range(start // self.block, -(-stop // self.block)):
            lo, hi = j * self.block, (j + 1) * self.block
            blk = extract_patches(self.images, self.block, self.size, seed=(self.seed, j))
            parts.append(blk[max(start, lo) - lo:min(stop, hi) - lo])
        return np.concatenate(parts) if parts else np.zeros((0, self.n_features))

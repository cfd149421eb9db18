"""Natural-image patches: the whitening filter, the variance scaling, patch extraction, loaders."""

import numpy as np
import pytest

from reference.patches import (
    extract_patches,
    load_folder,
    load_skimage,
    natural_patches,
    whiten,
    whiten_images,
    whitening_filter,
)


def test_whitening_scales_a_cosine_by_the_filter_at_its_frequency():
    # a cosine on the FFT grid is an eigenfunction of the filter: whiten() multiplies it by W(rho)
    H, W = 64, 96
    ky, kx = 5, 12
    y, x = np.mgrid[:H, :W]
    img = np.cos(2 * np.pi * (ky * y / H + kx * x / W))
    rho = np.hypot(ky / H, kx / W)
    want = rho * np.exp(-((rho / 0.4) ** 4)) * img
    np.testing.assert_allclose(whiten(img + 3.0), want, atol=1e-12)  # the mean is removed too


def test_whitening_filter_is_the_papers_formula_in_cycles_per_pixel():
    F = whitening_filter((32, 32))
    assert F[0, 0] == 0
    f = 8 / 32  # 8 cycles per 32-pixel image, along x
    assert F[0, 8] == pytest.approx(f * np.exp(-((f / 0.4) ** 4)), rel=1e-14)
    assert F[0, 8] == F[8, 0] == F[0, -8]


def test_whiten_images_sets_the_pooled_variance():
    rng = np.random.default_rng(0)
    imgs = [rng.normal(size=(40, 50)), 3 * rng.normal(size=(30, 30))]
    white = whiten_images(imgs, variance=0.1)
    assert np.var(np.concatenate([w.ravel() for w in white])) == pytest.approx(0.1, rel=1e-12)
    ratio = white[0] / whiten(imgs[0])
    np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-9)  # one scale for all images


def test_patches_are_windows_of_the_images_with_their_mean_removed():
    rng = np.random.default_rng(1)
    imgs = [rng.normal(size=(20, 30)), rng.normal(size=(25, 18))]
    P, pos = extract_patches(imgs, 200, size=6, seed=3, return_positions=True)
    assert P.shape == (200, 36)
    np.testing.assert_allclose(P.mean(axis=1), 0, atol=1e-13)
    for p, (k, r, c) in zip(P, pos):
        win = imgs[k][r:r + 6, c:c + 6].ravel()
        np.testing.assert_allclose(p, win - win.mean(), atol=1e-13)
    assert set(pos[:, 0]) == {0, 1}
    np.testing.assert_array_equal(extract_patches(imgs, 200, 6, seed=3), P)
    assert not np.array_equal(extract_patches(imgs, 200, 6, seed=4), P)


def test_folder_of_images_is_loaded_as_grey(tmp_path):
    import imageio.v3 as iio

    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, size=(16, 16), dtype=np.uint8)
    iio.imwrite(tmp_path / "a.png", rgb)
    iio.imwrite(tmp_path / "b.png", grey)
    (tmp_path / "notes.txt").write_text("not an image")
    imgs = load_folder(str(tmp_path))
    assert [im.shape for im in imgs] == [(20, 24), (16, 16)]
    np.testing.assert_allclose(imgs[0], rgb @ np.array([0.2125, 0.7154, 0.0721]))
    np.testing.assert_array_equal(imgs[1], grey)
    P = natural_patches(10, size=8, seed=0, folder=str(tmp_path))
    # the folder's images, whitened to variance 0.1, cut into the seed's patches (not only a shape)
    np.testing.assert_array_equal(P, extract_patches(whiten_images(imgs, 0.1), 10, 8, 0))
    assert not np.array_equal(P, extract_patches(imgs, 10, 8, 0))


def test_skimage_photographs_load_as_grey_images():
    imgs = load_skimage(("camera", "grass"))
    assert [im.ndim for im in imgs] == [2, 2]
    assert all(min(im.shape) >= 256 for im in imgs)


@pytest.mark.parametrize("call, message", [
    (lambda tmp: load_folder(str(tmp / "missing")), "folder must be an existing directory"),
    (lambda tmp: load_folder(str(tmp)), "holds no image file"),
    (lambda tmp: extract_patches([np.zeros((5, 5))], 3, size=8), r"size must be <= the smallest image side \(5\)"),
    (lambda tmp: extract_patches([np.zeros((9, 9))], 0, size=8), "n_patches must be >= 1"),
    (lambda tmp: whiten_images([np.ones((8, 8))]), "must not all be constant"),
    (lambda tmp: load_skimage(("no_such_picture",)), "names must be scikit-image data functions"),
])
def test_bad_input_is_refused_with_a_message(tmp_path, call, message):
    with pytest.raises(ValueError, match=message):
        call(tmp_path)

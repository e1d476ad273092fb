"""conv2d kernels: the reference against an independent numpy oracle, every ISA path against the
reference, float64 finite differences, the adjoint identity, PyTorch (when installed), bad inputs."""
import numpy as np
import pytest

from cnnx import kernels
from conftest import num_threads, using_isa

# (n, c, h, w, k, kh, kw, stride, padding, dilation, groups): DESIGN.md's edge grid.
GRID = {
    "basic": (2, 3, 7, 7, 5, 3, 3, 1, 1, 1, 1),
    "prime_channels": (1, 7, 11, 13, 5, 3, 3, 1, 1, 1, 1),
    "stride2": (2, 4, 9, 10, 6, 3, 3, 2, 1, 1, 1),
    "stride3": (1, 3, 11, 11, 4, 3, 3, 3, 0, 1, 1),
    "pad_h_ne_w": (1, 3, 8, 9, 4, 3, 3, 1, (2, 0), 1, 1),
    "dilation2": (1, 3, 12, 12, 4, 3, 3, 1, 2, 2, 1),
    "stride_pair": (1, 2, 10, 12, 3, 3, 3, (2, 1), 1, (1, 2), 1),
    "groups2": (2, 4, 8, 8, 6, 3, 3, 1, 1, 1, 2),
    "groups2_items": (5, 6, 6, 7, 4, 3, 2, 1, 1, 1, 2),
    "depthwise": (2, 5, 9, 9, 5, 3, 3, 1, 1, 1, 5),
    "depthwise_mult2_s2": (2, 3, 10, 9, 6, 3, 3, 2, 1, 1, 3),
    "depthwise_dil2": (1, 4, 10, 10, 4, 3, 3, 1, 2, 2, 4),
    "depthwise_k5_s3": (1, 4, 33, 35, 4, 5, 5, 3, 2, 1, 4),
    "depthwise_wide": (2, 3, 6, 41, 3, 3, 3, 1, 1, 1, 3),
    # the flat depthwise kernels: shifted runs ("same", stride 1) and gathered lanes (others)
    "depthwise_7x7_same": (2, 6, 7, 7, 6, 3, 3, 1, 1, 1, 6),
    "depthwise_56_same": (1, 3, 56, 56, 3, 3, 3, 1, 1, 1, 3),
    "depthwise_k5_same_mult2": (1, 3, 11, 9, 6, 5, 5, 1, 2, 1, 3),
    "depthwise_14_s2": (2, 4, 14, 14, 4, 3, 3, 2, 1, 1, 4),
    "depthwise_odd_s2": (2, 5, 7, 7, 5, 3, 3, 2, 1, 1, 5),
    "depthwise_valid": (1, 4, 8, 8, 4, 3, 3, 1, 0, 1, 4),
    "depthwise_s2_dil2": (2, 3, 12, 11, 3, 3, 3, 2, 2, 2, 3),
    "depthwise_s2_pad0_k2": (1, 4, 9, 10, 4, 2, 2, 2, 0, 1, 4),
    "depthwise_s3_asym": (1, 2, 13, 8, 2, 3, 5, (3, 2), (1, 2), 1, 2),
    # the row-vector kernels (conv_depthwise.cpp): two planes per vector with a lone last channel, 5x5,
    # more than 8 rows; one plane per vector on a 14-wide plane
    "depthwise_rowvec_k5_odd": (2, 5, 11, 5, 5, 5, 5, 1, 2, 1, 5),
    "depthwise_rowvec_14": (1, 3, 14, 14, 3, 3, 3, 1, 1, 1, 3),
    # the stride-2 3x3 input gradient (conv_depthwise.cpp s2_3x3): rows of several vectors, odd and
    # even sizes, a row of 1
    "depthwise_s2_wide": (2, 3, 9, 45, 3, 3, 3, 2, 1, 1, 3),
    "depthwise_s2_even_wide": (1, 2, 12, 70, 2, 3, 3, 2, 1, 1, 2),
    "depthwise_s2_tiny": (1, 2, 1, 2, 2, 3, 3, 2, 1, 1, 2),
    "pointwise": (2, 8, 5, 6, 7, 1, 1, 1, 0, 1, 1),
    "pointwise_groups": (3, 8, 5, 5, 4, 1, 1, 1, 0, 1, 2),
    "1x1_stride2": (1, 8, 7, 7, 4, 1, 1, 2, 0, 1, 1),
    "1x1_padded": (1, 3, 4, 4, 2, 1, 1, 1, 1, 1, 1),
    "non_square": (1, 3, 9, 12, 4, 2, 5, 1, (0, 2), 1, 1),
    "kernel_eq_padded_input": (2, 3, 5, 5, 4, 7, 7, 1, 1, 1, 1),
    "1x1_output": (1, 6, 4, 4, 3, 4, 4, 1, 0, 1, 1),
    "batch0": (0, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1),
    "many_tiles": (1, 32, 40, 70, 8, 3, 3, 1, 1, 1, 1),
    "many_tiles_batch": (4, 32, 24, 70, 5, 3, 3, 2, 1, 1, 1),
    "row_tiles_batch": (3, 16, 48, 50, 6, 3, 3, 1, 1, 1, 1),
    "image_blocks_groups": (9, 4, 5, 6, 6, 3, 3, 1, 1, 1, 2),
    "image_blocks_pointwise": (7, 6, 4, 5, 5, 1, 1, 1, 0, 1, 1),
    "pointwise_large_image": (2, 32, 100, 100, 8, 1, 1, 1, 0, 1, 1),
    # 144 pixels: each image a GEMM of its own (conv.cpp, kPointwiseAlone), not grouped in a column matrix
    "pointwise_alone": (3, 64, 12, 12, 40, 1, 1, 1, 0, 1, 1),
    # one image split by columns between threads (conv.cpp), ragged last range; and with groups
    "pointwise_b1_columns": (1, 5, 23, 29, 6, 1, 1, 1, 0, 1, 1),
    "pointwise_b1_groups": (1, 6, 17, 19, 4, 1, 1, 1, 0, 1, 2),
    "alexnet_like": (2, 3, 31, 31, 8, 11, 11, 4, 2, 1, 1),
    # padding wider than the input: some kernel columns see only zeros (AlexNet's conv2 on a 1x1 map)
    # dense layers on small planes: the column matrix built flat (conv.cpp im2col_flat)
    "flat_5x5_same": (2, 3, 28, 28, 4, 5, 5, 1, 2, 1, 1),
    "flat_4x4_many_images": (21, 8, 4, 4, 6, 3, 3, 1, 1, 1, 1),
    "flat_s2_gather": (2, 4, 14, 13, 5, 3, 3, 2, 1, 1, 1),
    "flat_valid_gather": (3, 2, 12, 10, 3, 5, 3, 1, 0, 1, 1),
    "flat_row_33_wide": (1, 3, 9, 33, 4, 3, 3, 1, 1, 1, 1),
    "flat_row_tiles": (2, 48, 28, 27, 4, 3, 3, 1, 1, 1, 1),  # row tiles that start mid-vector
    "flat_row_tiles_s2": (1, 128, 60, 29, 3, 3, 3, 2, 1, 1, 1),  # gathered, tiles mid-vector
    "pad_exceeds_input": (1, 4, 1, 1, 3, 5, 5, 1, 2, 1, 1),
    # the direct kernels (conv_direct.cpp): rows cut into pieces, stacked narrow rows across image
    # boundaries, bands of rows of a large image, channel groups with dead lanes, chunked reductions
    "direct_wide_rows": (2, 20, 6, 31, 40, 3, 3, 1, 1, 1, 1),
    "direct_4x4_images": (37, 12, 4, 4, 48, 3, 3, 1, 1, 1, 1),
    "direct_7x7": (5, 16, 7, 7, 33, 3, 3, 1, 1, 1, 1),
    "direct_row_bands": (2, 8, 40, 30, 32, 3, 3, 1, 1, 1, 1),
    # one image in 3 row bands: on 2 threads the forward cuts it into 4 (conv_direct.cpp, balanced_plan)
    "direct_row_bands_odd": (1, 8, 40, 30, 32, 3, 3, 1, 1, 1, 1),
    "direct_stride_h2": (2, 8, 21, 17, 32, 3, 3, (2, 1), 1, 1, 1),
    "direct_groups": (3, 16, 9, 9, 64, 3, 3, 1, 1, 1, 2),
    "direct_5x5_dil": (2, 6, 12, 13, 32, 5, 5, 1, (4, 2), (2, 1), 1),
    "direct_long_reduction": (2, 80, 5, 6, 24, 3, 3, 1, 1, 1, 1),
    # the direct weight gradient: a kernel wider than a register tile (column pieces), column stride 3
    "direct_wide_kernel": (2, 3, 9, 40, 40, 2, 17, (1, 3), (1, 8), 1, 1),
    # the row kernels (conv_rows.cpp): LeNet's C1 and C3, two passes of output channels, 3 vectors
    "rows_lenet_c1": (3, 1, 32, 32, 6, 5, 5, 1, 0, 1, 1),
    "rows_lenet_c3": (2, 6, 14, 14, 16, 5, 5, 1, 0, 1, 1),
    "rows_two_passes_wide": (2, 3, 9, 45, 13, 3, 3, 1, 1, 1, 1),
    # Winograd F(2x2, 5x5) (conv_winograd.cpp), where forced: odd output sizes (partial tiles), a tile
    # row wider than a vector, asymmetric padding; and one that `auto` takes (64 channels each way)
    "winograd_5x5_odd": (2, 5, 11, 13, 6, 5, 5, 1, 2, 1, 1),
    "winograd_5x5_wide_row": (1, 3, 9, 41, 4, 5, 5, 1, (1, 2), 1, 1),
    "winograd_5x5_auto": (1, 64, 27, 27, 64, 5, 5, 1, 2, 1, 1),
    # ... and its weight gradient where `auto` takes it (96 channels each way, 49 tiles)
    "winograd_dw_auto": (1, 96, 14, 14, 96, 3, 3, 1, 1, 1, 1),
    # the strided col2im's interleaved runs of taps (conv.cpp, col2im_rows): stride 2 and 4 with edges
    # and a kernel width not a multiple of the stride; a tiny plane whose taps share no valid column
    "col2im_runs_s2": (2, 3, 9, 23, 4, 3, 5, 2, (1, 2), 1, 1),
    "col2im_runs_s4_odd_kernel": (1, 2, 13, 45, 3, 3, 11, (1, 4), (0, 3), 1, 1),
    "col2im_runs_tiny": (1, 2, 3, 2, 2, 3, 8, (1, 4), (1, 5), 1, 1),
    "pad_exceeds_input_s2": (2, 3, 1, 2, 2, 7, 7, 2, 3, 1, 1),
    "pad_exceeds_input_groups": (1, 4, 2, 1, 4, 5, 5, 1, 2, 1, 2),
    "pad_exceeds_input_depthwise": (1, 3, 1, 1, 3, 5, 5, 1, 2, 1, 3),
    # pointwise images multiplied pixels x channels (conv.cpp, pixel_rows): 196 pixels with 256 KiB
    # of weights packed once as the GEMM's B (forward and dx); a 7x7 forward with images alone while
    # its dx (24 rows) keeps them grouped
    "pointwise_pixel_rows": (2, 256, 14, 14, 256, 1, 1, 1, 0, 1, 1),
    "pointwise_7x7_alone": (5, 24, 7, 7, 64, 1, 1, 1, 0, 1, 1),
}
GRID_IDS = list(GRID)


def pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


def make(case, dtype, seed=0):
    n, c, h, w, k, kh, kw, s, p, d, g = case
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, c, h, w)).astype(dtype)
    wt = rng.uniform(-1, 1, (k, c // g, kh, kw)).astype(dtype)
    b = rng.uniform(-1, 1, k).astype(dtype)
    args = dict(stride=s, padding=p, dilation=d, groups=g)
    return x, wt, b, args


def out_size(case):
    n, c, h, w, k, kh, kw, s, p, d, g = case
    (sh, sw), (ph, pw), (dh, dw) = pair(s), pair(p), pair(d)
    return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1


# ---------------------------------------------------------------------------------------------
# The numpy oracle: explicit windows of the padded input, one einsum per group, in float64.


def oracle_windows(x, kh, kw, s, p, d, oh, ow):
    """windows[n, c, i, j, a, b] = padded x[n, c, a*sh + i*dh, b*sw + j*dw]."""
    (sh, sw), (ph, pw), (dh, dw) = pair(s), pair(p), pair(d)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = np.empty(x.shape[:2] + (kh, kw, oh, ow))
    for i in range(kh):
        for j in range(kw):
            win[:, :, i, j] = xp[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
    return win


def oracle_forward(x, wt, b, stride, padding, dilation, groups):
    n, c = x.shape[:2]
    k, cg, kh, kw = wt.shape
    oh = (x.shape[2] + 2 * pair(padding)[0] - pair(dilation)[0] * (kh - 1) - 1) // pair(stride)[0] + 1
    ow = (x.shape[3] + 2 * pair(padding)[1] - pair(dilation)[1] * (kw - 1) - 1) // pair(stride)[1] + 1
    win = oracle_windows(x, kh, kw, stride, padding, dilation, oh, ow)
    kg = k // groups
    y = np.empty((n, k, oh, ow))
    for g in range(groups):
        y[:, g * kg:(g + 1) * kg] = np.einsum("ncijab,kcij->nkab", win[:, g * cg:(g + 1) * cg],
                                              wt[g * kg:(g + 1) * kg].astype(np.float64))
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    return y


def oracle_backward_weight(x, dy, kh, kw, stride, padding, dilation, groups):
    n, c = x.shape[:2]
    k, oh, ow = dy.shape[1:]
    win = oracle_windows(x, kh, kw, stride, padding, dilation, oh, ow)
    cg, kg = c // groups, k // groups
    dw = np.empty((k, cg, kh, kw))
    for g in range(groups):
        dw[g * kg:(g + 1) * kg] = np.einsum("ncijab,nkab->kcij", win[:, g * cg:(g + 1) * cg],
                                            dy[:, g * kg:(g + 1) * kg].astype(np.float64))
    return dw


def fp_bound(case, x, wt, dy, dtype):
    """Rounding-error bounds of the three results for a computation in `dtype`: the number of terms
    of each sum times eps times the sum of magnitudes (computed in float64 by the oracle)."""
    n, c, h, w, k, kh, kw, s, p, d, g = case
    eps = np.finfo(dtype).eps
    args = dict(stride=s, padding=p, dilation=d, groups=g)
    ax, aw, ady = np.abs(x).astype(np.float64), np.abs(wt).astype(np.float64), np.abs(dy).astype(np.float64)
    terms = (c // g) * kh * kw + 2
    with using_isa("ref"):
        y_mag = oracle_forward(ax, aw, np.ones(k), **args)
        dx_mag = kernels.conv2d_backward_input(ady, aw, (h, w), **args)
        dw_mag = oracle_backward_weight(ax, ady, kh, kw, s, p, d, g)
    oh, ow = out_size(case)
    return (terms * eps * y_mag + 1e-300, ((k // g) * kh * kw + 2) * eps * dx_mag + 1e-300,
            (n * oh * ow + 2) * eps * dw_mag + 1e-300)


def run_all(case, x, wt, b, dy, args):
    n, c, h, w, k, kh, kw, *_ = case
    y = kernels.conv2d_forward(x, wt, b, **args)
    dx = kernels.conv2d_backward_input(dy, wt, (h, w), **args)
    dw, db = kernels.conv2d_backward_weight(x, dy, (kh, kw), bias=True, **args)
    return y, dx, dw, db


def random_dy(case, dtype, seed=1):
    oh, ow = out_size(case)
    return np.random.default_rng(seed).uniform(-1, 1, (case[0], case[4], oh, ow)).astype(dtype)


# ---------------------------------------------------------------------------------------------
# correctness


@pytest.mark.parametrize("name", GRID_IDS)
def test_reference_matches_numpy_oracle(name):
    case = GRID[name]
    x, wt, b, args = make(case, np.float64)
    dy = random_dy(case, np.float64)
    with using_isa("ref"):
        y, dx, dw, db = run_all(case, x, wt, b, dy, args)
    assert y.shape == (case[0], case[4]) + out_size(case)
    np.testing.assert_allclose(y, oracle_forward(x, wt, b, **args), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, oracle_backward_weight(x, dy, case[5], case[6], *case[7:]), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)
    # dx through the adjoint identity against the oracle forward: <conv(x'), dy> = <x', dx> for all x'.
    probe = np.random.default_rng(7).uniform(-1, 1, x.shape)
    lhs = np.vdot(oracle_forward(probe, wt, None, **args), dy)
    assert abs(lhs - np.vdot(probe, dx)) <= 1e-10 * max(1.0, abs(lhs))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", GRID_IDS)
def test_fast_paths_match_reference(fast_isa, conv_algorithm, name, dtype):
    case = GRID[name]
    x, wt, b, args = make(case, dtype)
    dy = random_dy(case, dtype)
    got = run_all(case, x, wt, b, dy, args)
    with using_isa("ref"):
        want = run_all(case, x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64),
                       dy.astype(np.float64), args)
    y_bound, dx_bound, dw_bound = fp_bound(case, x, wt, dy, dtype)
    db_bound = (case[0] * out_size(case)[0] * out_size(case)[1] + 2) * np.finfo(dtype).eps * \
        np.abs(dy).astype(np.float64).sum(axis=(0, 2, 3)) + 1e-300
    for what, g, wv, bound in zip(("y", "dx", "dw", "db"), got, want, (y_bound, dx_bound, dw_bound, db_bound)):
        assert g.dtype == dtype and g.shape == wv.shape, what
        err = np.abs(g.astype(np.float64) - wv)
        assert np.all(err <= 2 * bound), f"{what}: max error {err.max()} over bound"


# 3x3 layers take Winograd where they carry enough work (conv_winograd.cpp, winograd_chosen). On
# small maps (tile rows of fewer than 7 tiles, narrow_chosen): 512 channels from 128 tiles (forward),
# 256 tiles (dx) and 64 (dw); 256 channels on even maps with 4 tiles a row. The pick shows in the
# bits: `auto` gives what the forced algorithm gives, and Winograd's bits differ from the direct
# sums'. (Correctness of both on these maps: the grid, every algorithm forced.)
@pytest.mark.parametrize("n, c, hw, forward, dx, dw", [
    (8, 512, 8, "winograd", "direct", "winograd"),   # 128 tiles
    (16, 512, 8, "winograd", "winograd", "winograd"),  # 256 tiles
    (4, 512, 8, "direct", "direct", "winograd"),     # 64 tiles
    (2, 512, 8, "direct", "direct", "direct"),       # 32 tiles
    (8, 256, 8, "winograd", "direct", "winograd"),   # even, 4 tiles a row
    (16, 256, 7, "direct", "direct", "direct"),      # odd: partial tiles
    (32, 256, 4, "direct", "direct", "direct"),      # 2 tiles a row
    (16, 128, 8, "direct", "direct", "direct"),      # 128 channels
    # 14x14 maps (7 tiles a row): the input gradient's thresholds, 196 tiles with 512 channels and
    # 384 with 128 (the forward's: 144 tiles with 64 channels; the weight gradient's: 49 with 96)
    (4, 512, 14, "winograd", "winograd", "winograd"),
    (2, 512, 14, "direct", "direct", "winograd"),
    (8, 128, 14, "winograd", "winograd", "winograd"),
    (4, 128, 14, "winograd", "direct", "winograd"),
], ids=["512x8x8_b8", "512x8x8_b16", "512x8x8_b4", "512x8x8_b2", "256x8x8_b8", "256x7x7_b16", "256x4x4_b32",
        "128x8x8_b16", "512x14x14_b4", "512x14x14_b2", "128x14x14_b8", "128x14x14_b4"])
def test_small_maps_choose_winograd_by_work(n, c, hw, forward, dx, dw):
    from conftest import using_conv_algorithm
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (n, c, hw, hw)).astype(np.float32)
    wt = rng.uniform(-1, 1, (c, c, 3, 3)).astype(np.float32)
    dy = rng.uniform(-1, 1, (n, c, hw, hw)).astype(np.float32)
    passes = {"forward": lambda: kernels.conv2d_forward(x, wt, padding=1),
              "dx": lambda: kernels.conv2d_backward_input(dy, wt, (hw, hw), padding=1),
              "dw": lambda: kernels.conv2d_backward_weight(x, dy, 3, padding=1)[0]}
    for name, expect in (("forward", forward), ("dx", dx), ("dw", dw)):
        auto = passes[name]()
        for algorithm in ("winograd", "direct"):
            with using_conv_algorithm(algorithm):
                forced = passes[name]()
            assert np.array_equal(auto, forced) == (algorithm == expect), (name, algorithm)


# kernels.conv2d_algorithm reports the algorithm each pass runs (conv.cpp: the choice functions the
# kernels themselves dispatch on). Cross-check on the grid: forcing the reported algorithm gives
# `auto`'s bits, pass by pass.
@pytest.mark.parametrize("name", GRID_IDS)
def test_reported_algorithm_is_the_one_that_runs(name):
    from conftest import using_conv_algorithm
    case = GRID[name]
    n, c, h, w, k, kh, kw, *_ = case
    x, wt, b, args = make(case, np.float32)
    dy = random_dy(case, np.float32)
    passes = {"forward": lambda: kernels.conv2d_forward(x, wt, b, **args),
              "backward_input": lambda: kernels.conv2d_backward_input(dy, wt, (h, w), **args),
              "backward_weight": lambda: kernels.conv2d_backward_weight(x, dy, (kh, kw), **args)[0]}
    for pass_, run in passes.items():
        reported = kernels.conv2d_algorithm(x.shape, wt.shape, pass_=pass_, **args)
        assert reported in ("gemm", "direct", "winograd", "rows", "depthwise"), reported
        if reported == "depthwise":
            assert args["groups"] == c and c > 1
            continue
        auto = run()
        with using_conv_algorithm(reported):
            assert kernels.conv2d_algorithm(x.shape, wt.shape, pass_=pass_, **args) == reported
            assert np.array_equal(run(), auto), (pass_, reported)


# The few-channel rules (conv_rows.cpp rows_fits, conv_direct.h preferred, conv_direct_weight.cpp).
@pytest.mark.parametrize("shape, weight, stride, expect", [
    ((2, 3, 32, 32), (64, 3, 3, 3), 1, ("rows", "direct")),     # a CIFAR network's first layer
    ((1, 3, 32, 32), (64, 3, 3, 3), 1, ("gemm", "direct")),     # one image: rows would use one thread
    ((2, 64, 28, 28), (16, 64, 3, 3), 1, ("rows", "direct")),   # 16 output channels, long reduction
    ((2, 192, 28, 28), (16, 192, 1, 1), 1, ("gemm", "gemm")),   # 1x1: the GEMM on the image itself
    ((2, 3, 5, 5), (64, 3, 3, 3), 1, ("gemm", "direct")),       # rows of 5 values
    ((8, 3, 224, 224), (64, 3, 3, 3), 1, ("gemm", "direct")),   # VGG16's conv1_1: 224-wide rows
    ((8, 3, 224, 224), (32, 3, 3, 3), 2, ("direct", "direct")), # MobileNet's conv1
    ((2, 32, 28, 28), (8, 32, 3, 3), 1, ("rows", "gemm")),      # 8 of 32 lanes: not direct for dw
], ids=["3to64", "3to64_b1", "64to16", "192to16_1x1", "3to64_5x5map", "vgg_conv1_1", "mobilenet_conv1", "32to8"])
def test_few_channel_layers_choose_rows_and_direct(shape, weight, stride, expect):
    from conftest import FAST_ISAS
    # The lane rules count 32-channel tiles (AVX-512 float); AVX2's are 16 wide, so the same shapes
    # choose differently there. Deliberate skip on CPUs without AVX-512; CI's machines have it.
    if "avx512" not in FAST_ISAS:
        pytest.skip("the rules are stated for AVX-512's 32-channel float tiles")
    pad = weight[2] // 2
    with using_isa("avx512"):
        got = tuple(kernels.conv2d_algorithm(shape, weight, stride=stride, padding=pad, pass_=p)
                    for p in ("forward", "backward_weight"))
    assert got == expect


# The same rules with AVX2's 16 vector registers, where the row kernels' sums spill: few-channel
# layers go to the direct tiles from a third of their 16 lanes (measured on an AMD EPYC).
@pytest.mark.parametrize("shape, weight, expect", [
    ((256, 1, 32, 32), (6, 1, 5, 5), ("direct", "gemm", "direct")),    # LeNet C1
    ((256, 6, 14, 14), (16, 6, 5, 5), ("direct", "rows", "direct")),   # LeNet C3: dx keeps the rows
    ((2, 32, 28, 28), (4, 32, 3, 3), ("gemm", "direct", "gemm")),      # 4 of 16 lanes (dx: 32 of 32)
], ids=["lenet_c1", "lenet_c3", "32to4"])
def test_few_channel_layers_on_avx2(shape, weight, expect):
    from conftest import FAST_ISAS
    if "avx2" not in FAST_ISAS:
        pytest.skip("needs a CPU with AVX2")
    with using_isa("avx2"):
        got = tuple(kernels.conv2d_algorithm(shape, weight, pass_=p)
                    for p in ("forward", "backward_input", "backward_weight"))
    assert got == expect


def test_conv2d_algorithm_settings_and_isas():
    from conftest import using_conv_algorithm
    layer = dict(input_shape=(8, 512, 8, 8), weight_shape=(512, 512, 3, 3), padding=1)
    with using_conv_algorithm("gemm"):
        assert kernels.conv2d_algorithm(**layer) == "gemm"
    with using_conv_algorithm("rows"):  # forced, the row kernels take any unit-stride layer they fit
        assert kernels.conv2d_algorithm(**layer) == "rows"
        assert kernels.conv2d_algorithm(**layer, stride=2) == "gemm"  # ... but not stride 2
    with using_conv_algorithm("winograd"):  # cannot run 1x1: the column matrix instead
        assert kernels.conv2d_algorithm((8, 512, 8, 8), (512, 512, 1, 1)) == "gemm"
    with using_isa("ref"):
        assert kernels.conv2d_algorithm(**layer) == "ref"
    assert kernels.conv2d_algorithm((4, 6, 9, 9), (6, 1, 3, 3), groups=6, pass_="backward_weight") == "depthwise"
    assert kernels.conv2d_algorithm(**layer, dtype=np.float64) in ("winograd", "direct", "gemm")


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(input_shape=(1, 3, 8)), ValueError, "input_shape"),
    (dict(input_shape=(1, 3, 8, -8)), ValueError, "input_shape"),
    (dict(weight_shape=(4, 3, 3, 3.0)), TypeError, "weight_shape"),
    (dict(weight_shape=(4, 2, 3, 3)), ValueError, "input channels"),
    (dict(pass_="backward"), ValueError, "pass_"),
    (dict(pass_=1), TypeError, "pass_"),
    (dict(dtype="int32"), ValueError, "dtype"),
    (dict(dtype="nonsense"), TypeError, "dtype"),
    (dict(stride=0), ValueError, "stride"),
    (dict(groups=2), ValueError, "groups"),
    (dict(weight_shape=(4, 3, 11, 11)), ValueError, "larger than the padded input"),
])
def test_conv2d_algorithm_rejects_bad_arguments(kwargs, error, match):
    args = dict(input_shape=(1, 3, 8, 8), weight_shape=(4, 3, 3, 3)) | kwargs
    with pytest.raises(error, match=match):
        kernels.conv2d_algorithm(**args)


@pytest.mark.parametrize("algorithm", ["auto", "gemm", "direct", "rows"])
@pytest.mark.parametrize("groups", [2, 1], ids=["depthwise", "dense"])
@pytest.mark.parametrize("h, w, stride", [(7, 7, 1), (14, 14, 1), (14, 14, 2), (7, 7, 2), (4, 4, 1), (28, 28, 2),
                                          (29, 29, 2), (28, 28, 1), (33, 35, 1)])
def test_flat_planes_do_not_leak_across_rows(fast_isa, algorithm, h, w, stride, groups):
    """The flat depthwise kernels and the flat im2col treat a plane as one run: a value at the end of
    a row must not reach the start of the next (even an Inf, which times a zero weight would give
    NaN). Not Winograd: its transforms mix an N x N patch before any weight applies, so an Inf spreads
    to the whole tile by design (docs/kernels.md); its finite results are checked on the grid."""
    from conftest import using_conv_algorithm
    with using_conv_algorithm(algorithm):
        _check_no_leak(h, w, stride, groups)


def _check_no_leak(h, w, stride, groups):
    x = np.zeros((1, 2, h, w), np.float32)
    x[0, :, :, -1] = np.inf  # the last column
    x[0, :, :, 0] = -np.inf  # the first column
    wt = np.ones((2, 2 // groups, 3, 3), np.float32)
    wt[:, :, :, 0] = 0.0     # taps that would read across a row end, weighted zero
    y = kernels.conv2d_forward(x, wt, stride=stride, padding=1, groups=groups)
    with using_isa("ref"):
        want = kernels.conv2d_forward(x, wt, stride=stride, padding=1, groups=groups)
    np.testing.assert_array_equal(y, want)
    dw = kernels.conv2d_backward_weight(x, np.ones_like(y), (3, 3), stride=stride, padding=1, groups=groups)[0]
    with using_isa("ref"):
        want_dw = kernels.conv2d_backward_weight(x, np.ones_like(y), (3, 3), stride=stride, padding=1, groups=groups)[0]
    np.testing.assert_array_equal(dw, want_dw)


def test_finite_differences_float64_reference():
    case = (2, 4, 6, 5, 4, 3, 2, (2, 1), (1, 0), (1, 2), 2)
    x, wt, b, args = make(case, np.float64)
    dy = random_dy(case, np.float64)
    h = 1e-6

    def loss(xv, wv, bv):
        return np.vdot(kernels.conv2d_forward(xv, wv, bv, **args), dy)

    with using_isa("ref"):
        _, dx, dw, db = run_all(case, x, wt, b, dy, args)
        rng = np.random.default_rng(3)
        for grad, which in ((dx, 0), (dw, 1), (db, 2)):
            flat = list(rng.choice(grad.size, size=min(grad.size, 12), replace=False))
            for idx in flat:
                plus, minus = [x.copy(), wt.copy(), b.copy()], [x.copy(), wt.copy(), b.copy()]
                plus[which].reshape(-1)[idx] += h
                minus[which].reshape(-1)[idx] -= h
                numeric = (loss(*plus) - loss(*minus)) / (2 * h)
                assert abs(numeric - grad.reshape(-1)[idx]) <= 1e-6 * max(1.0, abs(numeric))


@pytest.mark.parametrize("name", ["basic", "stride3", "groups2", "depthwise_mult2_s2", "pointwise", "many_tiles",
                                  "winograd_5x5_odd"])
def test_adjoint_identity_every_path(isa, conv_algorithm, name):
    case = GRID[name]
    x, wt, _, args = make(case, np.float64)
    dy = random_dy(case, np.float64)
    lhs = np.vdot(kernels.conv2d_forward(x, wt, None, **args), dy)
    rhs = np.vdot(x, kernels.conv2d_backward_input(dy, wt, case[2:4], **args))
    assert abs(lhs - rhs) <= 1e-11 * max(1.0, np.abs(x).sum())
    dw, _ = kernels.conv2d_backward_weight(x, dy, case[5:7], **args)
    assert abs(lhs - np.vdot(wt, dw)) <= 1e-11 * max(1.0, np.abs(x).sum())


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", ["many_tiles_batch", "row_tiles_batch", "groups2_items", "depthwise_k5_s3",
                                  "pointwise", "image_blocks_pointwise", "direct_4x4_images", "direct_row_bands"])
def test_bitwise_repeatable(fast_isa, conv_algorithm, name, threads, restore_threads):
    case = GRID[name]
    x, wt, b, args = make(case, np.float32)
    dy = random_dy(case, np.float32)
    with num_threads(threads):
        first = run_all(case, x, wt, b, dy, args)
        for again in (run_all(case, x, wt, b, dy, args) for _ in range(3)):
            for a, c in zip(first, again):
                assert np.array_equal(a, c)


@pytest.mark.parametrize("name", ["pointwise_large_image", "pointwise_alone", "pointwise_b1_columns", "pointwise_b1_groups",
                                  "pointwise_pixel_rows", "pointwise_7x7_alone", "depthwise_7x7_same",
                                  "depthwise_rowvec_k5_odd", "depthwise_rowvec_14", "depthwise_56_same", "depthwise_14_s2",
                                  "depthwise_s2_wide", "many_tiles_batch", "direct_row_bands", "direct_row_bands_odd",
                                  "winograd_5x5_odd", "winograd_dw_auto"])
def test_bits_do_not_depend_on_the_thread_count(fast_isa, conv_algorithm, name, restore_threads):
    """The kernels split work so that every sum runs in one fixed order (conv.cpp, conv_depthwise.cpp):
    one thread and two give the same bits, not merely close values."""
    same_bits_on_one_and_two_threads(GRID[name], np.float32)


def same_bits_on_one_and_two_threads(case, dtype):
    """Forward, dx, dw and db of `case` on one thread and on two: asserts equal bits; returns the
    inputs (x, wt, b, args) and the two-thread results."""
    x, wt, b, args = make(case, dtype)
    dy = random_dy(case, dtype)
    with num_threads(1):
        one = run_all(case, x, wt, b, dy, args)
    with num_threads(2):
        two = run_all(case, x, wt, b, dy, args)
    for a, c in zip(one, two):
        assert np.array_equal(a, c)
    return (x, wt, b, args), two


def test_pointwise_weight_gradient_in_rounds(fast_isa, restore_threads):
    """A pointwise dw with too few columns to share between threads is cut at the GEMM's k blocks and
    summed image by image in rounds (conv.cpp, pointwise_weight_by_depth): 12 images of 96x96 take two
    rounds. Two threads give one thread's bits, and both match the float64 reference."""
    case = (12, 32, 96, 96, 64, 1, 1, 1, 0, 1, 1)
    x, wt, b, args = make(case, np.float32)
    dy = random_dy(case, np.float32)
    with num_threads(1):
        one = kernels.conv2d_backward_weight(x, dy, case[5:7], bias=True, **args)
    with num_threads(2):
        two = kernels.conv2d_backward_weight(x, dy, case[5:7], bias=True, **args)
    for a, c in zip(one, two):
        assert np.array_equal(a, c)
    with using_isa("ref"):
        want, _ = kernels.conv2d_backward_weight(x.astype(np.float64), dy.astype(np.float64), case[5:7], **args)
    _, _, dw_bound = fp_bound(case, x, wt, dy, np.float32)
    assert np.all(np.abs(two[0].astype(np.float64) - want) <= 2 * dw_bound)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_prepacked_weights(fast_isa, dtype, restore_threads):
    """A deep pointwise layer's weights (128 -> 512 channels: 256 KiB and more) are packed once per
    call on two threads (conv.cpp, pack_weights_once; forward and dx) and by each GEMM on one: the same
    bits."""
    case = (4, 128, 48, 48, 512, 1, 1, 1, 0, 1, 1)
    (x, wt, b, args), two = same_bits_on_one_and_two_threads(case, dtype)
    want = oracle_forward(x[:1].astype(np.float64), wt.astype(np.float64), b.astype(np.float64), **args)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(two[0][:1], want, rtol=tol, atol=tol)


def test_strided_inputs_are_accepted():
    case = GRID["groups2"]
    x, wt, b, args = make(case, np.float32)
    xf = np.asfortranarray(x)
    wide = np.zeros(x.shape[:3] + (2 * x.shape[3],), np.float32)
    wide[..., ::2] = x
    want = kernels.conv2d_forward(x, wt, b, **args)
    assert np.array_equal(kernels.conv2d_forward(xf, wt, b, **args), want)
    assert np.array_equal(kernels.conv2d_forward(wide[..., ::2], wt, b, **args), want)


def test_no_bias_and_bias_none_gradient():
    case = GRID["basic"]
    x, wt, b, args = make(case, np.float64)
    y0 = kernels.conv2d_forward(x, wt, None, **args)
    y1 = kernels.conv2d_forward(x, wt, b, **args)
    np.testing.assert_allclose(y1 - y0, np.broadcast_to(b[None, :, None, None], y0.shape), atol=1e-12)
    dw, db = kernels.conv2d_backward_weight(x, random_dy(case, np.float64), 3, **args)
    assert db is None and dw.shape == wt.shape


# ---------------------------------------------------------------------------------------------
# PyTorch as a second oracle


@pytest.mark.parametrize("name", GRID_IDS)
def test_matches_torch(name):
    torch = pytest.importorskip("torch")
    case = GRID[name]
    x, wt, b, args = make(case, np.float64)
    dy = random_dy(case, np.float64)
    y, dx, dw, db = run_all(case, x, wt, b, dy, args)
    xt, wtt, bt = (torch.tensor(a, requires_grad=True) for a in (x, wt, b))
    yt = torch.nn.functional.conv2d(xt, wtt, bt, **args)
    yt.backward(torch.tensor(dy))
    for mine, theirs in ((y, yt.detach()), (dx, xt.grad), (dw, wtt.grad), (db, bt.grad)):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# bad input


def _ok():
    x = np.zeros((2, 4, 8, 8), np.float32)
    w = np.zeros((6, 2, 3, 3), np.float32)
    return x, w


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(groups=3), ValueError, "divisible by groups"),
    (dict(groups=0), ValueError, "groups"),
    (dict(groups=1.0), TypeError, "groups"),
    (dict(stride=0), ValueError, "stride"),
    (dict(stride=(1, -1)), ValueError, "stride"),
    (dict(stride=True), TypeError, "stride"),
    (dict(stride=(1, 2, 3)), ValueError, "stride"),
    (dict(dilation=0), ValueError, "dilation"),
    (dict(padding=-1), ValueError, "padding"),
    (dict(padding="same"), TypeError, "padding"),
    (dict(dilation=4), ValueError, "larger than the padded input"),
])
def test_bad_arguments(kwargs, error, words):
    x, w = _ok()
    args = dict(groups=2)
    args.update(kwargs)
    with pytest.raises(error, match=words):
        kernels.conv2d_forward(x, w, **args)


def test_bad_arrays():
    x, w = _ok()
    with pytest.raises(ValueError, match="expects 4 input channels.*has 6"):
        kernels.conv2d_forward(np.zeros((2, 6, 8, 8), np.float32), w, groups=2)
    with pytest.raises(ValueError, match="'bias'.*6"):
        kernels.conv2d_forward(x, w, np.zeros(5, np.float32), groups=2)
    with pytest.raises(ValueError, match="'input'.*4"):
        kernels.conv2d_forward(x[0], w, groups=2)
    with pytest.raises(TypeError, match="'weight'"):
        kernels.conv2d_forward(x, w.astype(np.float64), groups=2)
    with pytest.raises(TypeError, match="'input'"):
        kernels.conv2d_forward(x.astype(np.int32), w, groups=2)
    with pytest.raises(TypeError, match="'input'"):
        kernels.conv2d_forward(x.tolist(), w, groups=2)
    with pytest.raises(ValueError, match="kernel 9x9"):
        kernels.conv2d_forward(x, np.zeros((6, 2, 9, 9), np.float32), groups=2)
    with pytest.raises(ValueError, match="empty kernel"):
        kernels.conv2d_forward(x, np.zeros((6, 2, 0, 3), np.float32), groups=2)


def test_bad_backward_arguments():
    x, w = _ok()
    dy = np.zeros((2, 6, 6, 6), np.float32)
    kernels.conv2d_backward_input(dy, w, (8, 8), groups=2)
    with pytest.raises(ValueError, match="'grad_output'.*rows"):
        kernels.conv2d_backward_input(dy, w, (9, 8), groups=2)
    with pytest.raises(ValueError, match="input_size"):
        kernels.conv2d_backward_input(dy, w, (0, 8), groups=2)
    with pytest.raises(ValueError, match="overflow"):
        kernels.conv2d_backward_input(dy, w, (2**40, 2**40), groups=2)
    with pytest.raises(ValueError, match="'grad_output'.*images"):
        kernels.conv2d_backward_weight(x, dy[:1], 3, groups=2)
    with pytest.raises(ValueError, match="'grad_output'.*columns"):
        kernels.conv2d_backward_weight(x, dy[..., :5], 3, groups=2)
    with pytest.raises(TypeError, match="'bias'"):
        kernels.conv2d_backward_weight(x, dy, 3, groups=2, bias=1)
    with pytest.raises(ValueError, match="kernel_size"):
        kernels.conv2d_backward_weight(x, dy, 0, groups=2)


FUSED_CASES = ["basic", "prime_channels", "stride2", "groups2", "depthwise", "pointwise", "direct_4x4_images",
               "direct_groups", "direct_row_bands", "flat_5x5_same", "1x1_output"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", FUSED_CASES)
def test_fused_tail_is_bitwise_the_separate_passes(fast_isa, conv_algorithm, name, dtype):
    """conv2d_forward(scale, shift, relu) == conv, then batch norm in evaluation, then ReLU, to the bit
    (NaN and signed zeros included), whether the tail runs in the direct kernel's epilogue or as a
    pass after the GEMM or depthwise kernels."""
    from cnnx import _C
    case = GRID[name]
    x, wt, b, args = make(case, dtype)
    x[0, 0, 0, :2] = [np.nan, -0.0]
    k = case[4]
    rng = np.random.default_rng(5)
    gamma, beta = rng.uniform(-2, 2, k).astype(dtype), rng.uniform(-1, 1, k).astype(dtype)
    mean, var = rng.uniform(-1, 1, k).astype(dtype), rng.uniform(0.2, 2, k).astype(dtype)
    # batch_norm's evaluation coefficients (batch_norm.cpp), rounded once from float64
    ad = gamma.astype(np.float64) * (1.0 / np.sqrt(var.astype(np.float64) + 1e-5))
    scale, shift = ad.astype(dtype), (beta.astype(np.float64) - mean.astype(np.float64) * ad).astype(dtype)
    y = kernels.conv2d_forward(x, wt, b, **args)
    normed = _C.batch_norm_forward(y, gamma, beta, mean.copy(), var.copy(), False, 0.1, 1e-5)[0]
    want = np.where(normed < 0, dtype(0), normed)
    got = kernels.conv2d_forward(x, wt, b, **args, scale=scale, shift=shift, relu=True)
    assert np.array_equal(got, want, equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(want))
    assert np.array_equal(kernels.conv2d_forward(x, wt, b, **args, scale=scale, shift=shift), normed, equal_nan=True)
    assert np.array_equal(kernels.conv2d_forward(x, wt, b, **args, relu=True), np.where(y < 0, dtype(0), y),
                          equal_nan=True)

"""The error contract of every public entry point (issue 9, catalogue R8).

One table of bad inputs to kernels, functional ops, tensors, layers, models, optimizers and
schedulers, the data pipeline (loaders, datasets, transforms, dataset files), checkpoints and weight
files, and the CLI: wrong dtype / ndim / shape, channel and groups mismatches, non-positive stride /
dilation / groups / kernel, negative or oversize padding, NaN, infinite or non-numeric
hyper-parameters, sizes whose byte count overflows, non-array objects, ragged lists, out-of-range
class labels, state dicts that do not fit, missing, truncated, corrupt or malicious files, bad
command lines. Each must raise TypeError or ValueError (the CLI: exit status 2 and no traceback)
with a message that names the argument (for a file: the file); never a crash, never a silent
conversion, never a result. The few cases that list another type use PyTorch's / Python's own:
IndexError for a dimension index, MemoryError for an unallocatable output, FileNotFoundError
(IsADirectoryError) for a path that does not exist (is a folder).

A crash must fail its case, not the run, so the cases run in a child process: one child runs the
whole table and reports each case as it finishes; if it dies (a segfault, an abort) or hangs, the
case it was running is recorded as a crash and a fresh child carries on with the rest. The table
costs one interpreter start (about a second) when nothing crashes.

Run ``python tests/test_error_contract.py`` to print the table's results without pytest.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile

import pytest

# Each case: (id, code, words[, allowed]). `code` runs with the names set up in _namespace() (modules
# and small helpers: `tmp` writes a file into a scratch folder that is removed afterwards, `st` / `idx`
# / `cifar_batch` / `png` build file contents, `params` / `opt` / `tds` build parameters, an SGD
# optimizer, a TensorDataset); it must raise TypeError or ValueError (or, where a case says so, one of
# `allowed`: MemoryError for an output that cannot be allocated, IndexError for a dimension index as in
# PyTorch, FileNotFoundError / IsADirectoryError for a path) whose message contains every string in
# `words` (case-insensitive).
# A code starting with "cli:" is a command line for `cnnx` instead; it must exit with status 2 and
# print a message holding `words` (argparse's convention), with no traceback.
X = "np.ones((1, 3, 8, 8), np.float32)"
W = "np.ones((4, 3, 3, 3), np.float32)"
CASES = [
    # --- cnnx.kernels: convolution ---------------------------------------------------------
    ("conv-input-float16", f"K.conv2d_forward({X}.astype(np.float16), {W})", ["input", "float16"]),
    ("conv-input-int32", f"K.conv2d_forward({X}.astype(np.int32), {W})", ["input", "int32"]),
    ("conv-mixed-dtype", f"K.conv2d_forward({X}, {W}.astype(np.float64))", ["weight", "float64"]),
    ("conv-input-3d", f"K.conv2d_forward({X}[0], {W})", ["input", "3-D"]),
    ("conv-input-5d", f"K.conv2d_forward({X}[None], {W})", ["input", "5-D"]),
    ("conv-weight-2d", f"K.conv2d_forward({X}, np.ones((4, 27), np.float32))", ["weight", "2-D"]),
    ("conv-channel-mismatch", f"K.conv2d_forward({X}, np.ones((4, 2, 3, 3), np.float32))", ["weight", "input"]),
    ("conv-groups-0", f"K.conv2d_forward({X}, {W}, groups=0)", ["groups"]),
    ("conv-scale-without-shift", f"K.conv2d_forward({X}, {W}, scale=np.ones(4, np.float32))", ["scale", "shift"]),
    ("conv-scale-length", f"K.conv2d_forward({X}, {W}, scale=np.ones(3, np.float32), shift=np.ones(4, np.float32))",
     ["scale", "3"]),
    ("conv-shift-dtype", f"K.conv2d_forward({X}, {W}, scale=np.ones(4, np.float32), shift=np.ones(4))",
     ["shift", "float64"]),
    ("conv-relu-not-bool", f"K.conv2d_forward({X}, {W}, relu=1)", ["relu", "bool"]),
    ("conv-groups-neg", f"K.conv2d_forward({X}, {W}, groups=-1)", ["groups"]),
    ("conv-groups-indivisible", f"K.conv2d_forward({X}, np.ones((4, 1, 3, 3), np.float32), groups=3)",
     ["groups"]),
    ("conv-out-channels-vs-groups",
     "K.conv2d_forward(np.ones((1, 2, 8, 8), np.float32), np.ones((3, 1, 3, 3), np.float32), groups=2)",
     ["groups"]),
    ("conv-groups-float", f"K.conv2d_forward({X}, {W}, groups=1.0)", ["groups"]),
    ("conv-groups-bool", f"K.conv2d_forward({X}, {W}, groups=True)", ["groups"]),
    ("conv-stride-0", f"K.conv2d_forward({X}, {W}, stride=0)", ["stride"]),
    ("conv-stride-neg", f"K.conv2d_forward({X}, {W}, stride=(1, -2))", ["stride"]),
    ("conv-stride-str", f"K.conv2d_forward({X}, {W}, stride='2')", ["stride"]),
    ("conv-stride-triple", f"K.conv2d_forward({X}, {W}, stride=(1, 1, 1))", ["stride"]),
    ("conv-stride-2to70", f"K.conv2d_forward({X}, {W}, stride=2**70)", ["stride"]),
    ("conv-dilation-0", f"K.conv2d_forward({X}, {W}, dilation=0)", ["dilation"]),
    ("conv-padding-neg", f"K.conv2d_forward({X}, {W}, padding=-1)", ["padding"]),
    ("conv-padding-nan", f"K.conv2d_forward({X}, {W}, padding=float('nan'))", ["padding"]),
    ("conv-kernel-too-big", f"K.conv2d_forward({X}, np.ones((4, 3, 9, 9), np.float32))", ["kernel"]),
    ("conv-kernel-empty", f"K.conv2d_forward({X}, np.ones((4, 3, 0, 3), np.float32))", ["weight"]),
    ("conv-bias-length", f"K.conv2d_forward({X}, {W}, np.ones(5, np.float32))", ["bias"]),
    ("conv-bias-2d", f"K.conv2d_forward({X}, {W}, np.ones((4, 1), np.float32))", ["bias"]),
    ("conv-bias-list", f"K.conv2d_forward({X}, {W}, [0.0] * 4)", ["bias", "list"]),
    ("conv-input-list", f"K.conv2d_forward({X}.tolist(), {W})", ["input", "list"]),
    ("conv-input-none", f"K.conv2d_forward(None, {W})", ["input"]),
    ("conv-input-object-array", f"K.conv2d_forward(np.empty((1, 3, 8, 8), object), {W})", ["input", "object"]),
    ("conv-input-big-endian", f"K.conv2d_forward({X}.astype('>f4'), {W})", ["input"]),
    ("conv-bwd-input-size-0", f"K.conv2d_backward_input(np.ones((1, 4, 6, 6), np.float32), {W}, (0, 8))",
     ["input_size"]),
    ("conv-padding-overflow", f"K.conv2d_forward({X}, {W}, padding=2**40)", ["padding", "overflow"]),
    ("conv-padding-2to62", f"K.conv2d_forward({X}, {W}, padding=2**62)", ["padding"]),
    ("conv-dilation-2to62", f"K.conv2d_forward({X}, {W}, dilation=2**62)", ["dilation"]),
    ("conv-bwd-input-size-overflow",
     "K.conv2d_backward_input(np.ones((1, 4, 1, 1), np.float32), np.ones((4, 3, 1, 1), np.float32), (2**40, 2**40))",
     ["overflow"]),
    ("adaptive-output-overflow", f"K.adaptive_avg_pool2d_forward({X}, (2**40, 2**40))", ["output_size"]),
    ("adaptive-output-unallocatable", f"K.adaptive_avg_pool2d_forward({X}, (2**22, 2**22))", ["bytes"],
     (MemoryError,)),
    ("maxpool-bwd-size-overflow",
     "K.max_pool2d_backward(np.ones((1, 1, 1, 1), np.float32), np.zeros((1, 1, 1, 1), np.int64), (2**40, 2**40))",
     ["input_size"]),
    ("maxpool-dilation-overflow", f"K.max_pool2d_forward({X}, 2**40, dilation=2**40)", ["kernel_size"]),
    ("conv-bwd-input-grad-shape", f"K.conv2d_backward_input(np.ones((1, 4, 5, 6), np.float32), {W}, (8, 8))",
     ["grad_output"]),
    ("conv-bwd-weight-kernel-0",
     f"K.conv2d_backward_weight({X}, np.ones((1, 4, 6, 6), np.float32), (0, 3))", ["kernel_size"]),
    ("conv-bwd-weight-grad-batch",
     f"K.conv2d_backward_weight({X}, np.ones((2, 4, 6, 6), np.float32), (3, 3))", ["grad_output"]),
    ("conv-bwd-weight-bias-int", f"K.conv2d_backward_weight({X}, np.ones((1, 4, 6, 6), np.float32), 3, bias=1)",
     ["bias"]),
    # --- cnnx.kernels: GEMM ------------------------------------------------------------------
    ("gemm-dtype-mixed", "K.gemm(np.ones((2, 3), np.float32), np.ones((3, 2)))", ["b", "float64"]),
    ("gemm-a-1d", "K.gemm(np.ones(3, np.float32), np.ones((3, 2), np.float32))", ["a", "1-D"]),
    ("gemm-inner-mismatch", "K.gemm(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32))", ["b"]),
    ("gemm-alpha-nan", "K.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), alpha=float('nan'))",
     ["alpha"]),
    ("gemm-alpha-str", "K.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), alpha='1')", ["alpha"]),
    ("gemm-trans-int", "K.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), trans_a=1)",
     ["trans_a"]),
    ("gemm-out-shape",
     "K.gemm(np.ones((2, 3), np.float32), np.ones((3, 2), np.float32), out=np.ones((3, 3), np.float32))",
     ["out"]),
    ("gemm-beta-without-out", "K.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), beta=1.0)",
     ["beta"]),
    ("gemm-out-readonly",
     "o = np.ones((2, 2), np.float32); o.setflags(write=False); "
     "K.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), out=o)", ["out"]),
    # --- cnnx.kernels: pooling, LRN, batch norm ------------------------------------------------
    ("maxpool-kernel-0", f"K.max_pool2d_forward({X}, 0)", ["kernel_size"]),
    ("maxpool-stride-0", f"K.max_pool2d_forward({X}, 2, stride=0)", ["stride"]),
    ("maxpool-padding-over-half", f"K.max_pool2d_forward({X}, 2, padding=2)", ["padding"]),
    ("maxpool-padding-neg", f"K.max_pool2d_forward({X}, 2, padding=-1)", ["padding"]),
    ("maxpool-dilation-0", f"K.max_pool2d_forward({X}, 2, dilation=0)", ["dilation"]),
    ("maxpool-kernel-too-big", f"K.max_pool2d_forward({X}, 9)", ["kernel"]),
    ("maxpool-input-2d", "K.max_pool2d_forward(np.ones((8, 8), np.float32), 2)", ["input"]),
    ("maxpool-ceil-mode-str", f"K.max_pool2d_forward({X}, 2, ceil_mode='yes')", ["ceil_mode"]),
    ("maxpool-bwd-index-out-of-range",
     "K.max_pool2d_backward(np.ones((1, 1, 2, 2), np.float32), np.full((1, 1, 2, 2), 99, np.int64), (4, 4))",
     ["indices"]),
    ("maxpool-bwd-index-negative",
     "K.max_pool2d_backward(np.ones((1, 1, 2, 2), np.float32), np.full((1, 1, 2, 2), -2, np.int64), (4, 4))",
     ["indices"]),
    ("maxpool-bwd-index-int32",
     "K.max_pool2d_backward(np.ones((1, 1, 2, 2), np.float32), np.zeros((1, 1, 2, 2), np.int32), (4, 4))",
     ["indices", "int32"]),
    ("maxpool-bwd-index-shape",
     "K.max_pool2d_backward(np.ones((1, 1, 2, 2), np.float32), np.zeros((1, 1, 3, 2), np.int64), (4, 4))",
     ["indices"]),
    ("avgpool-divisor-0", f"K.avg_pool2d_forward({X}, 2, divisor_override=0)", ["divisor_override"]),
    ("avgpool-divisor-float", f"K.avg_pool2d_forward({X}, 2, divisor_override=2.5)", ["divisor_override"]),
    ("avgpool-bwd-grad-shape", "K.avg_pool2d_backward(np.ones((1, 3, 3, 4), np.float32), (8, 8), 2)",
     ["grad_output"]),
    ("adaptive-output-0", f"K.adaptive_avg_pool2d_forward({X}, 0)", ["output_size"]),
    ("adaptive-output-neg", f"K.adaptive_avg_pool2d_forward({X}, (2, -1))", ["output_size"]),
    ("lrn-size-0", f"K.local_response_norm_forward({X}, 0)", ["size"]),
    ("lrn-alpha-nan", f"K.local_response_norm_forward({X}, 3, alpha=float('nan'))", ["alpha"]),
    ("lrn-beta-inf", f"K.local_response_norm_forward({X}, 3, beta=float('inf'))", ["beta"]),
    ("lrn-k-str", f"K.local_response_norm_forward({X}, 3, k='1')", ["k"]),
    ("bn-weight-length",
     f"K.batch_norm_forward({X}, np.ones(4, np.float32), None, None, None, True)", ["weight"]),
    ("bn-eval-without-stats", f"K.batch_norm_forward({X}, None, None, None, None, False)", ["running_mean"]),
    ("bn-eps-nan", f"K.batch_norm_forward({X}, None, None, None, None, True, eps=float('nan'))", ["eps"]),
    ("bn-momentum-str", f"K.batch_norm_forward({X}, None, None, None, None, True, momentum='0.1')", ["momentum"]),
    ("bn-running-mean-dtype",
     f"K.batch_norm_forward({X}, None, None, np.zeros(3), np.ones(3, np.float32), True)", ["running_mean"]),
    # --- cnnx.kernels: elementwise ---------------------------------------------------------------
    ("relu-input-list", f"K.relu_forward({X}.tolist())", ["input", "list"]),
    ("relu-input-int64", f"K.relu_forward({X}.astype(np.int64))", ["input", "int64"]),
    ("relu-inplace-strided", f"K.relu_forward({X}[..., ::2], inplace=True)", ["input", "contiguous"]),
    ("relu-bwd-mixed-dtype", f"K.relu_backward({X}.astype(np.float64), {X})", ["grad_output", "float64"]),
    ("relu-bwd-shape", f"K.relu_backward({X}[0], {X})", ["grad_output", "shape"]),
    ("tanh-input-list", f"K.tanh_forward({X}.tolist())", ["input", "list"]),
    ("tanh-input-float16", f"K.tanh_forward({X}.astype(np.float16))", ["input", "float16"]),
    ("tanh-inplace-strided", f"K.tanh_forward({X}[..., ::2], inplace=True)", ["input", "contiguous"]),
    ("tanh-bwd-mixed-dtype", f"K.tanh_backward({X}.astype(np.float64), {X})", ["grad_output", "float64"]),
    ("tanh-bwd-shape", f"K.tanh_backward({X}[0], {X})", ["grad_output", "shape"]),
    ("sigmoid-input-int32", f"K.sigmoid_forward({X}.astype(np.int32))", ["input", "int32"]),
    ("sigmoid-inplace-read-only", "K.sigmoid_forward(np.broadcast_to(np.float32(0), (1, 3, 8, 8)), inplace=True)",
     ["input", "writeable"]),
    ("sigmoid-bwd-output-int", f"K.sigmoid_backward({X}, {X}.astype(np.int64))", ["output", "int64"]),
    ("sigmoid-bwd-out-dtype", f"K.sigmoid_backward({X}, {X}, out=np.empty((1, 3, 8, 8)))", ["out"]),
    ("add-mixed-dtype", f"K.add({X}, {X}.astype(np.float64))", ["b", "float64"]),
    ("add-broadcast", f"K.add({X}, np.ones(8, np.float32))", ["b", "shape"]),
    ("add-out-read-only", f"K.add({X}, {X}, out=np.broadcast_to(np.float32(0), (1, 3, 8, 8)))", ["out"]),
    # --- cnnx.kernels: optimizer steps -----------------------------------------------------------
    ("sgd-step-param-list", f"K.sgd_step({X}.tolist(), {X}, lr=0.1)", ["param", "list"]),
    ("sgd-step-param-int32", f"K.sgd_step({X}.astype(np.int32), {X}, lr=0.1)", ["param", "int32"]),
    ("sgd-step-grad-dtype", f"K.sgd_step({X}, {X}.astype(np.float64), lr=0.1)", ["grad", "float64"]),
    ("sgd-step-grad-shape", f"K.sgd_step({X}, {X}[0], lr=0.1)", ["grad", "shape"]),
    ("sgd-step-param-strided", f"K.sgd_step({X}[..., ::2], {X}[..., ::2], lr=0.1)", ["param", "contiguous"]),
    ("sgd-step-param-read-only", f"K.sgd_step(np.broadcast_to(np.float32(0), (1, 3, 8, 8)), {X}, lr=0.1)",
     ["param", "writeable"]),
    ("sgd-step-buffer-missing", f"K.sgd_step({X}, {X}, lr=0.1, momentum=0.9)", ["momentum_buffer"]),
    ("sgd-step-buffer-aliased", "(lambda a: K.sgd_step(a, np.ones_like(a), a, lr=0.1, momentum=0.9))"
     f"({X})", ["momentum_buffer", "share memory"]),
    ("sgd-step-lr-nan", f"K.sgd_step({X}, {X}, lr=float('nan'))", ["lr"]),
    ("sgd-step-nesterov-str", f"K.sgd_step({X}, {X}, lr=0.1, nesterov='yes')", ["nesterov"]),
    ("adam-step-exp-avg-dtype", f"K.adam_step({X}, {X}, {X}.astype(np.float64), {X}, step=1)", ["exp_avg", "float64"]),
    ("adam-step-exp-avg-sq-shape", f"K.adam_step({X}, {X}, {X}.copy(), {X}[0], step=1)", ["exp_avg_sq", "shape"]),
    ("adam-step-max-strided", f"K.adam_step({X}, {X}, {X}.copy(), {X}.copy(), {X}[..., ::2], step=1)",
     ["max_exp_avg_sq"]),
    ("adam-step-step-0", f"K.adam_step({X}, {X}, {X}.copy(), {X}.copy(), step=0)", ["step"]),
    ("adam-step-beta-1", f"K.adam_step({X}, {X}, {X}.copy(), {X}.copy(), step=1, betas=(1.0, 0.9))", ["betas"]),
    ("adam-step-eps-inf", f"K.adam_step({X}, {X}, {X}.copy(), {X}.copy(), step=1, eps=float('inf'))", ["eps"]),
    # --- cnnx.nn.functional and tensors --------------------------------------------------------
    ("F-conv-numpy-input", f"F.conv2d({X}, cnnx.ones(4, 3, 3, 3))", ["input"]),
    ("F-conv-int-input", "F.conv2d(cnnx.ones(1, 3, 8, 8, dtype=cnnx.int64), cnnx.ones(4, 3, 3, 3))", ["input"]),
    ("F-conv-padding-str", "F.conv2d(cnnx.ones(1, 3, 8, 8), cnnx.ones(4, 3, 3, 3), padding='full')", ["padding"]),
    ("F-conv-stride-0", "F.conv2d(cnnx.ones(1, 3, 8, 8), cnnx.ones(4, 3, 3, 3), stride=0)", ["stride"]),
    ("F-conv-groups-nan", "F.conv2d(cnnx.ones(1, 3, 8, 8), cnnx.ones(4, 3, 3, 3), groups=float('nan'))",
     ["groups"]),
    ("F-maxpool-kernel-0", "F.max_pool2d(cnnx.ones(1, 3, 8, 8), 0)", ["kernel_size"]),
    ("F-avgpool-padding-neg", "F.avg_pool2d(cnnx.ones(1, 3, 8, 8), 2, padding=-1)", ["padding"]),
    ("F-linear-shape", "F.linear(cnnx.ones(2, 5), cnnx.ones(3, 4))", ["weight"]),
    ("F-cross-entropy-label-high", "F.cross_entropy(cnnx.ones(2, 3), cnnx.tensor([0, 3]))", ["target", "3"]),
    ("F-cross-entropy-label-huge", "F.cross_entropy(cnnx.ones(2, 3), cnnx.tensor([0, 2**62]))", ["target"]),
    ("F-cross-entropy-label-neg", "F.cross_entropy(cnnx.ones(2, 3), cnnx.tensor([0, -2]))", ["target", "-2"]),
    ("F-cross-entropy-target-shape", "F.cross_entropy(cnnx.ones(2, 3), cnnx.tensor([0, 1, 2]))", ["target"]),
    ("F-cross-entropy-reduction", "F.cross_entropy(cnnx.ones(2, 3), cnnx.tensor([0, 1]), reduction='avg')",
     ["reduction"]),
    ("F-cross-entropy-smoothing-nan",
     "F.cross_entropy(cnnx.ones(2, 3), cnnx.tensor([0, 1]), label_smoothing=float('nan'))", ["label_smoothing"]),
    ("F-nll-label-high", "F.nll_loss(cnnx.ones(2, 3), cnnx.tensor([0, 7]))", ["target", "7"]),
    ("F-mse-shape", "F.mse_loss(cnnx.ones(2, 3), cnnx.ones(3, 2))", ["target"]),
    ("F-dropout-p", "F.dropout(cnnx.ones(2, 3), p=1.5)", ["p"]),
    ("F-dropout-p-nan", "F.dropout(cnnx.ones(2, 3), p=float('nan'))", ["p"]),
    ("F-softmax-dim", "F.softmax(cnnx.ones(2, 3), dim=5)", ["dim"], (IndexError,)),  # PyTorch's type for dims
    ("F-lrn-size-0", "F.local_response_norm(cnnx.ones(1, 3, 4, 4), 0)", ["size"]),
    ("F-batch-norm-eps-nan",
     "F.batch_norm(cnnx.ones(2, 3, 4, 4), None, None, training=True, eps=float('nan'))", ["eps"]),
    ("tensor-ragged", "cnnx.tensor([[1.0, 2.0], [3.0]])", ["data", "ragged"]),
    ("tensor-object", "cnnx.tensor(object())", ["data", "object"]),
    ("tensor-strings", "cnnx.tensor(['a', 'b'])", ["data", "non-numeric"]),
    ("tensor-none", "cnnx.tensor([1.0, None])", ["data"]),
    ("tensor-dtype", "cnnx.tensor([1.0], dtype='no-such-dtype')", ["dtype"]),
    ("zeros-negative", "cnnx.zeros(2, -1)", ["size"]),
    ("zeros-overflow", "cnnx.zeros(2**40, 2**40)", ["size"]),
    ("randn-float-size", "cnnx.randn(2.5)", ["size"]),
    ("matmul-shape", "cnnx.matmul(cnnx.ones(2, 3), cnnx.ones(2, 3))", ["other"]),
    # PyTorch raises RuntimeError "The size of tensor a (2) must match the size of tensor b (4) ..."
    ("tensor-add-broadcast", "cnnx.ones(2, 3) + cnnx.ones(4, 3)", ["add", "(2, 3)", "(4, 3)"]),
    ("tensor-rmul-broadcast", "np.ones((3, 2)) * cnnx.ones(2, 3)", ["mul", "(3, 2)", "(2, 3)"]),
    ("tensor-eq-broadcast", "cnnx.ones(2, 3) == cnnx.ones(4)", ["eq", "(2, 3)", "(4,)"]),
    ("tensor-add_-broadcast", "cnnx.ones(3).add_(cnnx.ones(2, 3))", ["add_", "other", "(2, 3)", "(3,)"]),
    ("cnnx-add-other-list", "cnnx.add(cnnx.ones(2), [1.0, 2.0])", ["add", "other", "list"]),
    ("cnnx-add-alpha-str", "cnnx.add(cnnx.ones(2), cnnx.ones(2), alpha='2')", ["add", "alpha", "str"]),
    ("cnnx-sub-alpha-float-int", "cnnx.sub(cnnx.tensor([1, 2]), 1, alpha=0.5)", ["sub", "alpha", "0.5"]),
    ("cnnx-div-rounding-mode", "cnnx.div(cnnx.ones(2), 2, rounding_mode='floor')", ["div", "rounding_mode"]),
    ("cnnx-sum-dtype-int64", "cnnx.sum(cnnx.ones(2), dtype=cnnx.int64)", ["sum", "dtype", "int64"]),
    ("F-softmax-dtype-int32", "F.softmax(cnnx.ones(2, 3), 1, dtype=cnnx.int32)", ["softmax", "dtype", "int32"]),
    ("cnnx-max-elementwise", "cnnx.max(cnnx.ones(2), cnnx.ones(2))", ["max", "dim"]),
    ("cnnx-permute-float-dims", "cnnx.permute(cnnx.ones(2, 3), (1.0, 0))", ["permute", "dims"]),
    # --- cnnx.nn layers --------------------------------------------------------------------------
    ("Conv2d-kernel-0", "nn.Conv2d(3, 8, 0)", ["kernel_size"]),
    ("Conv2d-groups-0", "nn.Conv2d(3, 8, 3, groups=0)", ["groups"]),
    ("Conv2d-groups-indivisible", "nn.Conv2d(3, 8, 3, groups=2)", ["groups"]),
    ("Conv2d-groups-nan", "nn.Conv2d(4, 8, 3, groups=float('nan'))", ["groups"]),
    ("Conv2d-stride-0", "nn.Conv2d(3, 8, 3, stride=0)", ["stride"]),
    ("Conv2d-padding-neg", "nn.Conv2d(3, 8, 3, padding=-1)", ["padding"]),
    ("Conv2d-in-channels-neg", "nn.Conv2d(-3, 8, 3)", ["in_channels"]),
    ("Conv2d-in-channels-str", "nn.Conv2d('3', 8, 3)", ["in_channels"]),
    ("Conv2d-wrong-channels", "nn.Conv2d(3, 8, 3)(cnnx.ones(1, 2, 8, 8))", ["input"]),
    ("Linear-in-features-neg", "nn.Linear(-1, 3)", ["in_features"]),
    ("Linear-in-features-float", "nn.Linear(2.5, 3)", ["in_features"]),
    ("Linear-in-features-nan", "nn.Linear(float('nan'), 3)", ["in_features"]),
    ("Linear-wrong-features", "nn.Linear(4, 3)(cnnx.ones(2, 5))", ["weight"]),
    ("MaxPool2d-kernel-0", "nn.MaxPool2d(0)(cnnx.ones(1, 3, 8, 8))", ["kernel_size"]),
    ("BatchNorm2d-features-0", "nn.BatchNorm2d(0)", ["num_features"]),
    ("BatchNorm2d-eps-nan", "nn.BatchNorm2d(3, eps=float('nan'))", ["eps"]),
    ("BatchNorm2d-wrong-channels", "nn.BatchNorm2d(4)(cnnx.ones(2, 3, 4, 4))", ["3"]),
    ("Dropout-p", "nn.Dropout(p=2)", ["p"]),
    ("LocalResponseNorm-size-0", "nn.LocalResponseNorm(0)", ["size"]),
    ("LocalResponseNorm-beta-nan", "nn.LocalResponseNorm(5, beta=float('nan'))", ["beta"]),
    # --- models and summary ----------------------------------------------------------------------
    ("model-num-classes-0", "models.resnet18(num_classes=0)", ["num_classes"]),
    ("model-unknown", "models.get_model('resnet19')", ["resnet19"]),
    ("model-name-int", "models.get_model(5)", ["name"]),
    ("model-width-nan", "models.mobilenet_v1(width_mult=float('nan'))", ["width_mult"]),
    ("model-wrong-input-channels", "models.lenet5()(cnnx.ones(1, 3, 32, 32))", ["input"]),
    ("summary-input-size-0", "cnnx.summary(models.lenet5(), (1, 0, 32))", ["input"]),
    ("summary-input-size-str", "cnnx.summary(models.lenet5(), 'big')", ["input_size"]),
    ("summary-batch-0", "cnnx.summary(models.lenet5(), (1, 32, 32), batch_size=0)", ["batch_size"]),
    ("summary-model-str", "cnnx.summary('lenet5', (1, 32, 32))", ["model"]),
    # --- cnnx.optim: optimizers -------------------------------------------------------------------
    ("SGD-lr-neg", "optim.SGD(params(), lr=-1)", ["lr", "-1"]),
    ("SGD-lr-nan", "optim.SGD(params(), lr=float('nan'))", ["lr", "nan"]),
    ("SGD-lr-inf", "optim.SGD(params(), lr=float('inf'))", ["lr", "inf"]),
    ("SGD-lr-str", "optim.SGD(params(), lr='0.1')", ["lr", "str"]),
    ("SGD-momentum-neg", "optim.SGD(params(), lr=0.1, momentum=-0.5)", ["momentum", "-0.5"]),
    ("SGD-momentum-bool", "optim.SGD(params(), lr=0.1, momentum=True)", ["momentum", "bool"]),
    ("SGD-nesterov-no-momentum", "optim.SGD(params(), lr=0.1, nesterov=True)", ["nesterov", "momentum"]),
    ("SGD-nesterov-dampening", "optim.SGD(params(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)",
     ["nesterov", "dampening"]),
    ("SGD-nesterov-str", "optim.SGD(params(), lr=0.1, momentum=0.9, nesterov='yes')", ["nesterov", "str"]),
    ("SGD-weight-decay-neg", "optim.SGD(params(), lr=0.1, weight_decay=-1e-4)", ["weight_decay"]),
    ("SGD-weight-decay-nan", "optim.SGD(params(), lr=0.1, weight_decay=float('nan'))", ["weight_decay", "nan"]),
    ("Adam-beta1-one", "optim.Adam(params(), betas=(1.0, 0.999))", ["betas", "1.0"]),
    ("Adam-beta2-neg", "optim.Adam(params(), betas=(0.9, -0.1))", ["betas", "-0.1"]),
    ("Adam-beta1-nan", "optim.Adam(params(), betas=(float('nan'), 0.999))", ["betas", "nan"]),
    ("Adam-betas-triple", "optim.Adam(params(), betas=(0.9, 0.99, 0.999))", ["betas"]),
    ("Adam-betas-float", "optim.Adam(params(), betas=0.9)", ["betas", "0.9"]),
    ("Adam-eps-neg", "optim.Adam(params(), eps=-1e-8)", ["eps"]),
    ("Adam-eps-str", "optim.Adam(params(), eps='tiny')", ["eps", "str"]),
    ("Adam-amsgrad-str", "optim.Adam(params(), amsgrad='no')", ["amsgrad", "str"]),
    ("AdamW-weight-decay-neg", "optim.AdamW(params(), weight_decay=-0.01)", ["weight_decay"]),
    ("optim-params-empty", "optim.SGD([], lr=0.1)", ["params", "empty"]),
    ("optim-params-tensor", "optim.SGD(params()[0], lr=0.1)", ["params", "iterable"]),
    ("optim-params-none", "optim.SGD(None, lr=0.1)", ["params", "NoneType"]),
    ("optim-params-ints", "optim.SGD([1, 2], lr=0.1)", ["params", "int"]),
    ("optim-params-str", "optim.Adam('weights')", ["params", "str"]),
    ("optim-params-int-tensor", "optim.SGD([cnnx.ones(2, dtype=cnnx.int64)], lr=0.1)", ["params", "int64"]),
    ("optim-params-generator-empty", "optim.SGD(iter([]), lr=0.1)", ["params", "empty"]),
    ("optim-group-no-params", "optim.SGD([{'lr': 0.1}], lr=0.1)", ["param_group", "params"]),
    ("optim-group-mixed", "optim.SGD([{'params': params()}, params()[0]], lr=0.1)", ["param_group", "Parameter"]),
    ("optim-group-lr-str", "optim.SGD([{'params': params(), 'lr': 'x'}], lr=0.1)", ["lr", "str"]),
    ("optim-group-overlap", "p = params(); optim.SGD([{'params': p}, {'params': p}], lr=0.1)",
     ["more than one parameter group"]),
    ("optim-add-group-not-dict", "opt().add_param_group(params())", ["param_group", "list"]),
    ("optim-load-state-dict-list", "opt().load_state_dict([1])", ["state_dict", "list"]),
    ("optim-load-state-dict-no-groups", "opt().load_state_dict({'state': {}})", ["state_dict", "param_groups"]),
    ("optim-load-state-dict-state-list",
     "o = opt(); sd = o.state_dict(); sd['state'] = [1]; o.load_state_dict(sd)", ["state", "list"]),
    ("optim-load-state-dict-group-params-int",
     "o = opt(); sd = o.state_dict(); sd['param_groups'][0]['params'] = 5; o.load_state_dict(sd)",
     ["param_groups", "params"]),
    ("optim-load-state-dict-group-count",
     "o = opt(); o.load_state_dict({'state': {}, 'param_groups': []})", ["parameter groups", "0"]),
    ("optim-load-state-dict-buffer-shape",
     "o = opt(); sd = o.state_dict(); sd['state'] = {0: {'momentum_buffer': np.ones(3, np.float32)}}; "
     "o.load_state_dict(sd)", ["momentum_buffer", "(3,)"]),
    ("optim-load-state-dict-lr-nan",
     "o = opt(); sd = o.state_dict(); sd['param_groups'][0]['lr'] = float('nan'); o.load_state_dict(sd)",
     ["lr", "nan"]),
    ("optim-load-adam-into-sgd",
     "p = params(); a = optim.Adam(p); a.state_dict(); opt(p).load_state_dict(a.state_dict())",
     ["momentum", "betas"]),
    ("optim-load-sgd-into-adam", "p = params(); optim.Adam(p).load_state_dict(opt(p).state_dict())",
     ["betas"]),
    ("optim-load-other-model", "opt(params(2)).load_state_dict(opt(params(1)).state_dict())",
     ["parameter group", "1", "2"]),
    # --- cnnx.optim.lr_scheduler -----------------------------------------------------------------
    ("StepLR-not-optimizer", "S.StepLR('sgd', 1)", ["optimizer", "str"]),
    ("StepLR-step-size-0", "S.StepLR(opt(), 0)", ["step_size", "0"]),
    ("StepLR-step-size-float", "S.StepLR(opt(), 2.5)", ["step_size", "2.5"]),
    ("StepLR-gamma-nan", "S.StepLR(opt(), 1, gamma=float('nan'))", ["gamma", "nan"]),
    ("StepLR-gamma-str", "S.StepLR(opt(), 1, gamma='0.1')", ["gamma", "str"]),
    ("StepLR-last-epoch-str", "S.StepLR(opt(), 1, last_epoch='0')", ["last_epoch", "str"]),
    ("MultiStepLR-not-increasing", "S.MultiStepLR(opt(), [30, 10])", ["milestones", "[30, 10]"]),
    ("MultiStepLR-milestone-neg", "S.MultiStepLR(opt(), [-1, 10])", ["milestone", "-1"]),
    ("MultiStepLR-milestones-int", "S.MultiStepLR(opt(), 10)", ["milestones", "int"]),
    ("MultiStepLR-gamma-inf", "S.MultiStepLR(opt(), [10], gamma=float('inf'))", ["gamma", "inf"]),
    ("CosineAnnealingLR-T-max-0", "S.CosineAnnealingLR(opt(), 0)", ["T_max", "0"]),
    ("CosineAnnealingLR-eta-min-nan", "S.CosineAnnealingLR(opt(), 10, eta_min=float('nan'))", ["eta_min", "nan"]),
    ("ReduceLROnPlateau-not-optimizer", "S.ReduceLROnPlateau(None)", ["optimizer", "NoneType"]),
    ("ReduceLROnPlateau-mode", "S.ReduceLROnPlateau(opt(), mode='avg')", ["mode", "avg"]),
    ("ReduceLROnPlateau-factor-1", "S.ReduceLROnPlateau(opt(), factor=1.0)", ["factor", "1.0"]),
    ("ReduceLROnPlateau-factor-str", "S.ReduceLROnPlateau(opt(), factor='0.5')", ["factor"]),
    ("ReduceLROnPlateau-threshold-mode", "S.ReduceLROnPlateau(opt(), threshold_mode='percent')",
     ["threshold_mode", "percent"]),
    ("ReduceLROnPlateau-threshold-nan", "S.ReduceLROnPlateau(opt(), threshold=float('nan'))", ["threshold", "nan"]),
    ("ReduceLROnPlateau-patience-neg", "S.ReduceLROnPlateau(opt(), patience=-1)", ["patience", "-1"]),
    ("ReduceLROnPlateau-min-lr-length", "S.ReduceLROnPlateau(opt(), min_lr=[0.0, 0.0])", ["min_lr", "2"]),
    ("ReduceLROnPlateau-step-str", "S.ReduceLROnPlateau(opt()).step('0.5')", ["metrics", "str"]),
    ("scheduler-load-state-dict-int", "S.StepLR(opt(), 1).load_state_dict(5)", ["state_dict", "int"]),
    ("plateau-load-state-dict-list", "S.ReduceLROnPlateau(opt()).load_state_dict([1])", ["state_dict", "list"]),
    # --- cnnx.data: DataLoader and datasets ------------------------------------------------------
    ("DataLoader-batch-size-0", "data.DataLoader(tds(), batch_size=0)", ["batch_size", "0"]),
    ("DataLoader-batch-size-neg", "data.DataLoader(tds(), batch_size=-4)", ["batch_size", "-4"]),
    ("DataLoader-batch-size-float", "data.DataLoader(tds(), batch_size=2.0)", ["batch_size", "2.0"]),
    ("DataLoader-batch-size-bool", "data.DataLoader(tds(), batch_size=True)", ["batch_size", "True"]),
    ("DataLoader-dataset-int", "data.DataLoader(5)", ["dataset", "int"]),
    ("DataLoader-dataset-no-len", "data.DataLoader(x for x in range(3))", ["dataset", "__len__"]),
    ("DataLoader-prefetch-neg", "data.DataLoader(tds(), prefetch=-1)", ["prefetch", "-1"]),
    ("DataLoader-prefetch-float", "data.DataLoader(tds(), prefetch=1.5)", ["prefetch", "1.5"]),
    ("DataLoader-seed-str", "data.DataLoader(tds(), shuffle=True, seed='42')", ["seed", "str"]),
    ("DataLoader-seed-neg", "data.DataLoader(tds(), shuffle=True, seed=-1)", ["seed", "-1"]),
    ("DataLoader-seed-float", "data.DataLoader(tds(), shuffle=True, seed=1.5)", ["seed", "1.5"]),
    ("DataLoader-shuffle-str", "data.DataLoader(tds(), shuffle='no')", ["shuffle", "str"]),
    ("DataLoader-drop-last-int", "data.DataLoader(tds(), drop_last=2)", ["drop_last", "int"]),
    ("DataLoader-collate-not-callable", "data.DataLoader(tds(), collate_fn=5)", ["collate_fn", "int"]),
    ("DataLoader-set-epoch-neg", "data.DataLoader(tds()).set_epoch(-1)", ["epoch", "-1"]),
    ("DataLoader-load-state-dict-empty", "data.DataLoader(tds()).load_state_dict({})", ["state", "seed"]),
    ("TensorDataset-size-mismatch", "data.TensorDataset(cnnx.ones(4, 2), cnnx.ones(3))", ["tensor 1", "(3,)"]),
    ("TensorDataset-list", "data.TensorDataset([[1.0, 2.0]])", ["tensor 0", "list"]),
    ("TensorDataset-empty", "data.TensorDataset()", ["tensor"]),
    ("TensorDataset-scalar", "data.TensorDataset(cnnx.tensor(1.0))", ["tensor 0", "()"]),
    ("random-split-lengths", "data.random_split(tds(), [3, 3])", ["lengths", "4"]),
    ("Subset-indices-float", "data.Subset(tds(), [0.5, 1.0])", ["indices", "float"]),
    ("default-collate-ragged", "data.default_collate([(cnnx.ones(2), 0), (cnnx.ones(2),)])", ["sample"]),
    # --- cnnx.data.transforms --------------------------------------------------------------------
    ("Normalize-std-0", "T.Normalize([0.5, 0.5], [0.5, 0.0])", ["std", "0"]),
    ("Normalize-std-nan", "T.Normalize(0.5, float('nan'))", ["std", "nan"]),
    ("Normalize-mean-nan", "T.Normalize(float('nan'), 0.5)", ["mean", "nan"]),
    ("Normalize-mean-str", "T.Normalize('gray', 0.5)", ["mean", "gray"]),
    ("Normalize-lengths", "T.Normalize([0.5, 0.5], [0.5, 0.5, 0.5])", ["mean", "std", "2", "3"]),
    ("Normalize-channels", "T.Normalize([0.5, 0.5], [0.5, 0.5])(cnnx.ones(3, 4, 4))", ["mean", "2", "3"]),
    ("Normalize-uint8-image", "T.Normalize(0.5, 0.5)(np.ones((4, 4, 3), np.uint8))", ["Normalize", "uint8"]),
    ("RandomCrop-size-0", "T.RandomCrop(0)", ["size", "0"]),
    ("RandomCrop-size-neg", "T.RandomCrop((8, -8))", ["size", "-8"]),
    ("RandomCrop-padding-neg", "T.RandomCrop(8, padding=-1)", ["padding", "-1"]),
    ("RandomCrop-padding-triple", "T.RandomCrop(8, padding=(1, 2, 3))", ["padding", "(1, 2, 3)"]),
    ("RandomCrop-too-big", "T.RandomCrop(10)(np.ones((8, 8), np.uint8))", ["size", "8x8"]),
    ("RandomRotation-neg", "T.RandomRotation(-10)", ["degrees", "-10"]),
    ("RandomRotation-nan", "T.RandomRotation(float('nan'))", ["degrees", "nan"]),
    ("RandomRotation-reversed", "T.RandomRotation((10, -10))", ["degrees", "(10, -10)"]),
    ("RandomRotation-interpolation", "T.RandomRotation(10, interpolation='cubic')", ["interpolation", "cubic"]),
    ("Resize-0", "T.Resize(0)", ["size", "0"]),
    ("Resize-pair-0", "T.Resize((0, 4))", ["size", "(0, 4)"]),
    ("Resize-float", "T.Resize(2.5)", ["size", "2.5"]),
    ("Pad-neg", "T.Pad(-2)", ["padding", "-2"]),
    ("CenterCrop-0", "T.CenterCrop(0)", ["size", "0"]),
    ("RandomHorizontalFlip-p-nan", "T.RandomHorizontalFlip(float('nan'))", ["p", "nan"]),
    ("Grayscale-channels-2", "T.Grayscale(2)", ["num_output_channels", "2"]),
    ("ToTensor-list", "T.ToTensor()([[1, 2], [3, 4]])", ["ToTensor", "list"]),
    ("ToTensor-4d", "T.ToTensor()(np.ones((1, 2, 2, 3), np.uint8))", ["ToTensor", "(1, 2, 2, 3)"]),
    ("transform-on-str", "T.RandomHorizontalFlip()('cat.png')", ["RandomHorizontalFlip", "str"]),
    ("Compose-not-callable", "T.Compose([T.ToTensor(), 'normalize'])", ["Compose", "normalize"]),
    # --- cnnx.data.datasets: missing, truncated and corrupt files -----------------------------
    ("MNIST-missing-folder", "datasets.MNIST('/nonexistent/mnist')", ["/nonexistent/mnist"], (FileNotFoundError,)),
    ("MNIST-missing-file", "datasets.MNIST(os.path.dirname(tmp('x', b'')))", ["train-images-idx3-ubyte"],
     (FileNotFoundError,)),
    ("MNIST-truncated-images",
     "d = os.path.dirname(tmp('train-labels-idx1-ubyte', idx([2], b'\\x01\\x02'))); "
     "tmp('train-images-idx3-ubyte', idx([2, 28, 28], bytes(1000)), d); datasets.MNIST(d)",
     ["train-images-idx3-ubyte", "truncated"]),
    ("MNIST-bad-magic",
     "d = os.path.dirname(tmp('train-labels-idx1-ubyte', idx([1], b'\\x01'))); "
     "tmp('train-images-idx3-ubyte', b'GIF89a' + bytes(100), d); datasets.MNIST(d)",
     ["train-images-idx3-ubyte", "IDX"]),
    ("MNIST-corrupt-gzip",
     "d = os.path.dirname(tmp('train-labels-idx1-ubyte', idx([1], b'\\x01'))); "
     "tmp('train-images-idx3-ubyte.gz', gzip.compress(idx([1, 28, 28], bytes(784)))[:-12], d); datasets.MNIST(d)",
     ["train-images-idx3-ubyte.gz", "gzip"]),
    ("MNIST-label-count",
     "d = os.path.dirname(tmp('train-labels-idx1-ubyte', idx([3], b'\\x01\\x02\\x03'))); "
     "tmp('train-images-idx3-ubyte', idx([2, 28, 28], bytes(1568)), d); datasets.MNIST(d)",
     ["train-labels-idx1-ubyte", "2", "(3,)"]),
    ("MNIST-label-out-of-range",
     "d = os.path.dirname(tmp('train-labels-idx1-ubyte', idx([1], b'\\x0c'))); "
     "tmp('train-images-idx3-ubyte', idx([1, 28, 28], bytes(784)), d); datasets.MNIST(d)",
     ["train-labels-idx1-ubyte", "12"]),
    ("read-idx-empty", "datasets.read_idx(tmp('empty-idx', b''))", ["empty-idx"]),
    ("CIFAR10-missing-folder", "datasets.CIFAR10('/nonexistent/cifar')", ["/nonexistent/cifar"],
     (FileNotFoundError,)),
    ("CIFAR10-truncated",
     "datasets.CIFAR10(os.path.dirname(tmp('test_batch', cifar_batch()[:-100])), train=False)", ["test_batch"]),
    ("CIFAR10-malicious-pickle",
     "datasets.CIFAR10(os.path.dirname(tmp('test_batch', pickle.dumps(os.system))), train=False)",
     ["test_batch", "system"]),
    ("CIFAR10-label-out-of-range",
     "datasets.CIFAR10(os.path.dirname(tmp('test_batch', cifar_batch(labels=[0, 10]))), train=False)",
     ["test_batch", "labels"]),
    ("CIFAR10-data-shape",
     "datasets.CIFAR10(os.path.dirname(tmp('test_batch', cifar_batch(width=3000))), train=False)",
     ["test_batch", "3072"]),
    ("ImageFolder-missing-folder", "datasets.ImageFolder('/nonexistent/images')", ["/nonexistent/images"],
     (FileNotFoundError,)),
    ("ImageFolder-no-classes", "datasets.ImageFolder(os.path.dirname(tmp('x.txt', b'')))", ["class"],
     (FileNotFoundError,)),
    ("ImageFolder-corrupt-image", "datasets.ImageFolder(os.path.dirname(os.path.dirname("
     "tmp('cat/broken.png', b'\\x89PNG\\r\\n\\x1a\\n' + bytes(40)))))[0]", ["broken.png"]),
    ("ImageFolder-mode", "datasets.ImageFolder(os.path.dirname(os.path.dirname(tmp('cat/a.png', png()))), "
     "mode='XYZ')", ["mode", "XYZ"]),
    ("Digits-size-0", "datasets.Digits(size=0)", ["size", "0"]),
    ("Digits-channels-2", "datasets.Digits(channels=2)", ["channels", "2"]),
    # --- checkpoints: cnnx.save / cnnx.load and the safetensors weight files -----------------------
    ("load-missing-file", "cnnx.load('/nonexistent/run/last.ckpt')", ["/nonexistent/run/last.ckpt"],
     (FileNotFoundError,)),
    ("load-directory", "cnnx.load(os.path.dirname(tmp('x', b'')))", ["cnnx-contract-"], (IsADirectoryError,)),
    ("load-path-none", "cnnx.load(None)", ["path", "NoneType"]),
    ("load-empty-file", "cnnx.load(tmp('empty.ckpt', b''))", ["empty.ckpt"]),
    ("load-text-file", "cnnx.load(tmp('notes.ckpt', b'this is a text file, not a checkpoint ' * 3))",
     ["notes.ckpt"]),
    ("load-truncated", "p = tmp('cut.ckpt'); cnnx.save({'w': cnnx.ones(64, 64)}, p); "
     "b = open(p, 'rb').read(); open(p, 'wb').write(b[:len(b) // 2]); cnnx.load(p)", ["cut.ckpt"]),
    ("load-header-huge", "cnnx.load(tmp('huge.ckpt', struct.pack('<Q', 2**63) + b'{}'))", ["huge.ckpt", "header"]),
    ("load-header-not-json", "cnnx.load(tmp('nj.ckpt', struct.pack('<Q', 8) + b'{oops!!}'))", ["nj.ckpt", "JSON"]),
    ("load-header-not-utf8", "cnnx.load(tmp('nu.ckpt', struct.pack('<Q', 4) + b'{\\xff}'))", ["nu.ckpt"]),
    ("load-header-list", "cnnx.load(tmp('hl.ckpt', st([])))", ["hl.ckpt", "object"]),
    ("load-bad-dtype", "cnnx.load(tmp('dt.ckpt', st({'w': {'dtype': 'C64', 'shape': [1], "
     "'data_offsets': [0, 8]}}, bytes(8))))", ["dt.ckpt", "w", "C64"]),
    ("load-dtype-not-str", "cnnx.load(tmp('dn.ckpt', st({'w': {'dtype': 4, 'shape': [1], "
     "'data_offsets': [0, 4]}}, bytes(4))))", ["dn.ckpt", "w", "dtype"]),
    ("load-shape-vs-bytes", "cnnx.load(tmp('sb.ckpt', st({'w': {'dtype': 'F32', 'shape': [3], "
     "'data_offsets': [0, 8]}}, bytes(8))))", ["sb.ckpt", "w", "3"]),
    ("load-shape-negative", "cnnx.load(tmp('sn.ckpt', st({'w': {'dtype': 'F32', 'shape': [-1, -2], "
     "'data_offsets': [0, 8]}}, bytes(8))))", ["sn.ckpt", "w", "shape"]),
    ("load-shape-float", "cnnx.load(tmp('sf.ckpt', st({'w': {'dtype': 'F32', 'shape': [1.5], "
     "'data_offsets': [0, 4]}}, bytes(4))))", ["sf.ckpt", "w", "shape"]),
    ("load-shape-overflow", "cnnx.load(tmp('so.ckpt', st({'w': {'dtype': 'F32', 'shape': [2**32, 2**32, 2**32], "
     "'data_offsets': [0, 0]}})))", ["so.ckpt", "w"]),
    ("load-offsets-out-of-bounds", "cnnx.load(tmp('ob.ckpt', st({'w': {'dtype': 'F32', 'shape': [250], "
     "'data_offsets': [0, 1000]}}, bytes(8))))", ["ob.ckpt", "w", "1000"]),
    ("load-offsets-reversed", "cnnx.load(tmp('or.ckpt', st({'w': {'dtype': 'F32', 'shape': [0], "
     "'data_offsets': [8, 0]}}, bytes(8))))", ["or.ckpt", "w"]),
    ("load-offsets-overlap", "cnnx.load(tmp('ol.ckpt', st({'a': {'dtype': 'F32', 'shape': [2], "
     "'data_offsets': [0, 8]}, 'b': {'dtype': 'F32', 'shape': [2], 'data_offsets': [4, 12]}}, bytes(12))))",
     ["ol.ckpt", "overlap"]),
    ("load-entry-missing-key", "cnnx.load(tmp('mk.ckpt', st({'w': {'dtype': 'F32', 'shape': [1]}}, bytes(4))))",
     ["mk.ckpt", "w", "data_offsets"]),
    ("load-metadata-not-dict", "cnnx.load(tmp('md.ckpt', st({'__metadata__': 5})))", ["md.ckpt", "__metadata__"]),
    ("load-cnnx-metadata-corrupt", "cnnx.load(tmp('cm.ckpt', st({'__metadata__': {'cnnx': '{oops'}})))",
     ["cm.ckpt", "metadata"]),
    ("load-metadata-missing-tensor", "cnnx.load(tmp('mt.ckpt', st({'__metadata__': {'cnnx': json.dumps("
     "{'format': 'cnnx.checkpoint', 'version': 1, 'tree': {'$tensor': 'w'}})}})))", ["mt.ckpt", "'w'"]),
    ("load-header-deep-nesting", "cnnx.load(tmp('dn.ckpt', struct.pack('<Q', 200000) + b'[' * 200000))",
     ["dn.ckpt", "JSON"]),
    ("load-header-duplicate-name", "h = b'{\"w\": {\"dtype\": \"U8\", \"shape\": [0], \"data_offsets\": [0, 0]}, "
     "\"w\": 1}'; cnnx.load(tmp('dup.ckpt', struct.pack('<Q', len(h)) + h))", ["dup.ckpt", "duplicate", "w"]),
    ("load-trailing-bytes", "cnnx.load(tmp('tb.ckpt', st({'w': {'dtype': 'U8', 'shape': [2], "
     "'data_offsets': [0, 2]}}, bytes(6))))", ["tb.ckpt", "4 bytes"]),
    ("load-bool-bytes", "cnnx.load(tmp('bb.ckpt', st({'m': {'dtype': 'BOOL', 'shape': [2], "
     "'data_offsets': [0, 2]}}, b'\\x00\\x07')))", ["bb.ckpt", "m", "BOOL"]),
    ("load-metadata-tree-corrupt", "cnnx.load(tmp('tc.ckpt', st({'__metadata__': {'cnnx': json.dumps("
     "{'format': 'cnnx.checkpoint', 'version': 1, 'tree': {'lr': {'$float': 'fast'}}})}})))", ["tc.ckpt", "fast"]),
    ("load-metadata-newer-version", "cnnx.load(tmp('nv.ckpt', st({'__metadata__': {'cnnx': json.dumps("
     "{'format': 'cnnx.checkpoint', 'version': 99, 'tree': 1})}})))", ["nv.ckpt", "99"]),
    ("save-object", "cnnx.save({'model': {'w': object()}}, tmp('o.ckpt'))", ["object", "['w']"]),
    ("save-string-array", "cnnx.save({'names': np.array(['a', 'b'])}, tmp('s.ckpt'))", ["names", "<U1"]),
    ("save-complex", "cnnx.save({'z': np.ones(2, np.complex64)}, tmp('z.ckpt'))", ["z", "complex64"]),
    ("save-path-none", "cnnx.save({'w': cnnx.ones(2)}, None)", ["path", "NoneType"]),
    ("load-safetensors-bad-dtype", "models.load_safetensors(tmp('w.safetensors', st({'w': {'dtype': 'Q8', "
     "'shape': [1], 'data_offsets': [0, 1]}}, bytes(1))))", ["w.safetensors", "Q8"]),
    ("load-safetensors-truncated", "models.load_safetensors(tmp('t.safetensors', st({'w': {'dtype': 'F64', "
     "'shape': [4], 'data_offsets': [0, 32]}}, bytes(16))))", ["t.safetensors", "w"]),
    ("save-safetensors-string", "models.save_safetensors({'w': 'weights'}, tmp('s.safetensors'))", ["'w'", "<U7"]),
    ("save-safetensors-ragged", "models.save_safetensors({'w': [[1.0], [1.0, 2.0]]}, tmp('r.safetensors'))",
     ["'w'"]),
    ("save-safetensors-key-int", "models.save_safetensors({1: np.ones(2)}, tmp('k.safetensors'))", ["name", "int"]),
    ("save-safetensors-not-mapping", "models.save_safetensors([np.ones(2)], tmp('l.safetensors'))",
     ["state", "list"]),
    ("load-torch-state-dict-int", "models.load_torch_state_dict(models.lenet5(), 5)", ["state", "int"]),
    ("load-torch-state-dict-missing-file", "models.load_torch_state_dict(models.lenet5(), '/nonexistent/w.safetensors')",
     ["/nonexistent/w.safetensors"], (FileNotFoundError,)),
    # --- Module.load_state_dict --------------------------------------------------------------------
    ("load-state-dict-missing", "nn.Linear(2, 3).load_state_dict({'weight': cnnx.ones(3, 2)})",
     ["missing", "bias"]),
    ("load-state-dict-unexpected",
     "nn.Linear(2, 3).load_state_dict({'weight': cnnx.ones(3, 2), 'bias': cnnx.ones(3), 'scale': cnnx.ones(1)})",
     ["unexpected", "scale"]),
    ("load-state-dict-shape", "nn.Linear(2, 3).load_state_dict({'weight': cnnx.ones(2, 2), 'bias': cnnx.ones(3)})",
     ["weight", "(2, 2)", "(3, 2)"]),
    ("load-state-dict-shape-not-strict",
     "nn.Linear(2, 3).load_state_dict({'weight': cnnx.ones(2, 2)}, strict=False)", ["weight", "(2, 2)"]),
    ("load-state-dict-string-value", "nn.Linear(2, 3).load_state_dict({'weight': 'abc', 'bias': cnnx.ones(3)})",
     ["weight", "str"]),
    ("load-state-dict-none-value", "nn.Linear(2, 3).load_state_dict({'weight': None, 'bias': cnnx.ones(3)})",
     ["weight", "NoneType"]),
    ("load-state-dict-ragged-value",
     "nn.Linear(2, 3).load_state_dict({'weight': [[1.0, 2.0], [3.0]], 'bias': cnnx.ones(3)})", ["weight"]),
    ("load-state-dict-complex-value",
     "nn.Linear(2, 3).load_state_dict({'weight': np.ones((3, 2), np.complex64), 'bias': cnnx.ones(3)})",
     ["weight", "complex64"]),
    ("load-state-dict-nan-into-int",
     "m = nn.BatchNorm2d(2); sd = dict(m.state_dict()); sd['num_batches_tracked'] = np.array(float('nan')); "
     "m.load_state_dict(sd)", ["num_batches_tracked", "nan"]),
    ("load-state-dict-not-mapping", "nn.Linear(2, 3).load_state_dict([cnnx.ones(3, 2)])", ["state_dict", "list"]),
    ("load-state-dict-strict-str", "m = nn.Linear(2, 3); m.load_state_dict(m.state_dict(), strict='yes')",
     ["strict", "str"]),
    # --- losses: class labels -------------------------------------------------------------------------
    ("F-cross-entropy-float-labels", "F.cross_entropy(cnnx.ones(2, 3), cnnx.tensor([0.0, 1.0]))", ["target", "(2,)"]),
    ("F-cross-entropy-bool-labels", "F.cross_entropy(cnnx.ones(2, 3), cnnx.tensor([True, False]))", ["target", "bool"]),
    ("F-cross-entropy-labels-2d", "F.cross_entropy(cnnx.ones(2, 3), cnnx.tensor([[0], [1]]))", ["target", "(2, 1)"]),
    ("F-cross-entropy-labels-list", "F.cross_entropy(cnnx.ones(2, 3), [0, 1])", ["target", "list"]),
    ("F-cross-entropy-label-neg-one", "F.cross_entropy(cnnx.ones(2, 3), cnnx.tensor([0, -1]))", ["target", "-1"]),
    ("F-cross-entropy-label-high-ignored-other",
     "F.cross_entropy(cnnx.ones(2, 3), cnnx.tensor([0, 5]), ignore_index=4)", ["target", "5"]),
    ("F-cross-entropy-ignore-index-float",
     "F.cross_entropy(cnnx.ones(2, 3), cnnx.tensor([0, 1]), ignore_index=1.5)", ["ignore_index", "1.5"]),
    ("F-cross-entropy-smoothing-str",
     "F.cross_entropy(cnnx.ones(2, 3), cnnx.tensor([0, 1]), label_smoothing='0.1')", ["label_smoothing", "str"]),
    ("F-cross-entropy-weight-length",
     "F.cross_entropy(cnnx.ones(2, 3), cnnx.tensor([0, 1]), weight=cnnx.ones(4))", ["weight", "(4,)"]),
    ("F-cross-entropy-spatial-label-high",
     "F.cross_entropy(cnnx.ones(1, 3, 2, 2), cnnx.tensor([[[0, 1], [2, 3]]]))", ["target", "3"]),
    ("F-nll-label-neg", "F.nll_loss(cnnx.ones(2, 3), cnnx.tensor([-5, 0]))", ["target", "-5"]),
    ("CrossEntropyLoss-label-high", "nn.CrossEntropyLoss()(cnnx.ones(2, 3), cnnx.tensor([1, 9]))", ["target", "9"]),
    # --- the command line ------------------------------------------------------------------------
    ("cli-unknown-model", "cli:summary resnet19", ["resnet19"]),
    ("cli-input-not-int", "cli:summary lenet5 --input 1,a,32", ["--input"]),
    ("cli-input-negative", "cli:summary lenet5 --input 1,-32,32", ["--input"]),
    ("cli-batch-0", "cli:summary lenet5 --batch 0", ["--batch"]),
    ("cli-width-nan", "cli:summary mobilenet_v1 --width nan", ["width"]),
    ("cli-classes-0", "cli:summary lenet5 --classes 0", ["classes"]),
    ("cli-unknown-command", "cli:frobnicate", ["frobnicate"]),
    ("cli-train-lr-inf", "cli:train lenet5 --epochs 0 --lr inf", ["--lr"]),
    ("cli-train-batch-0", "cli:train lenet5 --epochs 0 --batch-size 0", ["--batch-size"]),
    ("cli-train-epochs-neg", "cli:train lenet5 --epochs -1", ["--epochs"]),
    ("cli-train-save-every-0", "cli:train lenet5 --epochs 0 --save-every 0", ["--save-every"]),
    ("cli-train-image-size-0", "cli:train resnet18 --epochs 0 --image-size 0", ["--image-size"]),
    ("cli-train-seed-neg", "cli:train lenet5 --epochs 0 --seed -1", ["--seed"]),
    ("cli-train-threads-0", "cli:train lenet5 --epochs 0 --threads 0", ["--threads"]),
    ("cli-train-missing-data", "cli:train lenet5 --epochs 0 --data mnist:/nonexistent/mnist", ["/nonexistent/mnist"]),
    ("cli-train-resume-missing", "cli:train lenet5 --epochs 0 --resume /nonexistent/last.ckpt",
     ["/nonexistent/last.ckpt"]),
    ("cli-eval-missing-checkpoint", "cli:eval lenet5 /nonexistent/model.safetensors", ["/nonexistent/model.safetensors"]),
    ("cli-eval-batch-0", "cli:eval lenet5 /nonexistent/model.safetensors --batch-size 0", ["--batch-size"]),
    ("cli-eval-threads-0", "cli:eval lenet5 /nonexistent/model.safetensors --threads 0", ["--threads"]),
]


def _namespace(scratch: str) -> dict:
    """The names the cases' code can use; files the cases write go below the folder `scratch`."""
    import gzip
    import pickle
    import struct

    import numpy as np

    import cnnx
    import cnnx.kernels as K
    import cnnx.nn as nn
    import cnnx.nn.functional as F
    from cnnx import data, models, optim
    from cnnx.data import datasets
    from cnnx.data import transforms as T
    from cnnx.optim import lr_scheduler as S

    def tmp(name: str, content: bytes | None = None, folder: str | None = None) -> str:
        """The path of `name` in `folder` (default: a new folder below `scratch`), holding `content`
        when given (sub-folders in `name` are made)."""
        path = os.path.join(folder or tempfile.mkdtemp(prefix="case-", dir=scratch), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if content is not None:
            with open(path, "wb") as f:
                f.write(content)
        return path

    def st(header, payload: bytes = b"") -> bytes:
        """A safetensors file: 8-byte header length, the JSON `header`, `payload`."""
        text = json.dumps(header).encode()
        return struct.pack("<Q", len(text)) + text + payload

    def idx(shape, payload: bytes) -> bytes:
        """An IDX (MNIST) file of unsigned bytes with the given shape in its header."""
        return bytes([0, 0, 8, len(shape)]) + b"".join(struct.pack(">I", n) for n in shape) + payload

    def cifar_batch(labels=(0, 1), width: int = 3072) -> bytes:
        """A CIFAR-10 python batch (protocol-2 pickle with byte-string keys, as the real files)."""
        return pickle.dumps({b"batch_label": b"test", b"labels": list(labels),
                             b"data": np.zeros((len(labels), width), np.uint8)}, protocol=2)

    def png() -> bytes:
        from PIL import Image

        out = io.BytesIO()
        Image.new("RGB", (4, 4)).save(out, format="PNG")
        return out.getvalue()

    def params(n: int = 1) -> list:
        return [nn.Parameter(cnnx.ones(2)) for _ in range(n)]

    def opt(p=None):
        return optim.SGD(params() if p is None else p, lr=0.1, momentum=0.9)

    def tds():
        return data.TensorDataset(cnnx.ones(4, 2), cnnx.zeros(4, dtype=cnnx.int64))

    return {"np": np, "cnnx": cnnx, "K": K, "nn": nn, "F": F, "models": models, "optim": optim, "S": S,
            "data": data, "T": T, "datasets": datasets, "os": os, "json": json, "struct": struct, "gzip": gzip,
            "pickle": pickle, "tmp": tmp, "st": st, "idx": idx, "cifar_batch": cifar_batch, "png": png,
            "params": params, "opt": opt, "tds": tds}


def _run_case(code: str, ns: dict) -> dict:
    """Run one case; the outcome as {"raised": type name or None, "message": str}."""
    if code.startswith("cli:"):
        from cnnx import cli

        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                status = cli.main(code[4:].split())
        except SystemExit as e:  # argparse's own errors
            status = e.code
        except BaseException as e:  # noqa: BLE001 - reported: the user would see a traceback
            return {"raised": f"uncaught {type(e).__name__}", "message": str(e)}
        return {"raised": None if status in (0, None) else f"SystemExit({status})", "message": err.getvalue()}
    try:
        exec(code, dict(ns))  # noqa: S102 - the table above is the only input
    except BaseException as e:  # noqa: BLE001 - every outcome is reported
        return {"raised": type(e).__name__, "message": str(e),
                "contract": isinstance(e, (TypeError, ValueError)),
                "mro": [c.__name__ for c in type(e).__mro__]}
    return {"raised": None, "message": ""}


def _child(ids: list[str], report: str) -> None:
    """Run the cases `ids` in order, appending "start" and "done" lines to the file `report`."""
    table = {case[0]: case for case in CASES}
    with tempfile.TemporaryDirectory(prefix="cnnx-contract-") as scratch, open(report, "a", buffering=1) as f:
        ns = _namespace(scratch)
        for cid in ids:
            f.write(json.dumps({"start": cid}) + "\n")
            f.flush()
            out = _run_case(table[cid][1], ns)
            f.write(json.dumps({"done": cid, **out}) + "\n")
            f.flush()


def run_table(ids: list[str] | None = None, timeout: float = 120.0) -> dict:
    """Outcome of each case, run in as few child processes as crashes allow."""
    ids = [c[0] for c in CASES] if ids is None else list(ids)
    results: dict = {}
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    while ids:
        with tempfile.NamedTemporaryFile("w+", suffix=".jsonl", delete=False) as f:
            report = f.name
        try:
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", report, *ids],
                                  env=env, capture_output=True, text=True, timeout=timeout)
            how = f"exit status {proc.returncode}: {proc.stderr[-2000:]}"
        except subprocess.TimeoutExpired:
            how = f"hung (no answer in {timeout:.0f} s)"
        with open(report) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        os.unlink(report)
        started = None
        for line in lines:
            if "start" in line:
                started = line["start"]
            else:
                results[line["done"]] = line
                started = None
        rest = [cid for cid in ids if cid not in results]
        if not rest:
            break
        # The child died: blame the case it had started (or the first one when it died at import).
        culprit = started if started is not None else rest[0]
        results[culprit] = {"raised": "crash", "message": how}
        ids = [cid for cid in rest if cid != culprit]
    return results


def check(case, outcome) -> str | None:
    """None when the outcome keeps the contract, else what is wrong."""
    cid, code, words = case[:3]
    allowed = [t.__name__ for t in case[3]] if len(case) > 3 else []
    raised, msg = outcome["raised"], outcome["message"]
    if raised == "crash":
        return f"crashed the interpreter ({msg})"
    if raised is None:
        return "raised nothing (the bad input was accepted)"
    if code.startswith("cli:"):
        if raised != "SystemExit(2)":
            return f"expected exit status 2, got {raised}: {msg}"
        if "Traceback" in msg:
            return f"printed a traceback: {msg}"
    elif not outcome.get("contract") and not set(allowed) & set(outcome.get("mro", [])):
        return f"raised {raised}, not TypeError/ValueError: {msg}"
    missing = [w for w in words if w.lower() not in msg.lower()]
    if missing:
        return f"{raised} message does not name {missing}: {msg!r}"
    return None


_RESULTS: dict = {}


def _results() -> dict:
    if not _RESULTS:
        _RESULTS.update(run_table())
    return _RESULTS


def test_table_is_large_and_unique():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_rejected(case):
    problem = check(case, _results()[case[0]])
    assert problem is None, f"{case[0]}: {case[1]}\n  {problem}"


def test_a_crash_fails_only_its_case(monkeypatch):
    """The harness itself: a case that kills its child is reported as a crash, and the cases after
    it still run (in a fresh child)."""
    monkeypatch.setenv("CNNX_CONTRACT_CRASH_AT", "conv-groups-0")
    res = run_table(["conv-stride-0", "conv-groups-0", "conv-dilation-0"])
    assert res["conv-groups-0"]["raised"] == "crash"
    assert res["conv-stride-0"]["raised"] == res["conv-dilation-0"]["raised"] == "ValueError"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _report, _ids = sys.argv[2], sys.argv[3:]
        _crash_at = os.environ.get("CNNX_CONTRACT_CRASH_AT")
        if _crash_at in _ids:  # the harness's own test: die while running that case
            _child(_ids[:_ids.index(_crash_at)], _report)
            with open(_report, "a") as _f:
                _f.write(json.dumps({"start": _crash_at}) + "\n")
            os.abort()
        _child(_ids, _report)
    else:
        _res = run_table()
        _bad = 0
        for _case in CASES:
            _problem = check(_case, _res[_case[0]])
            _bad += _problem is not None
            print(("FAIL " if _problem else "ok   ") + _case[0] + ("" if _problem is None else f"  {_problem}"))
        print(f"{len(CASES)} cases, {_bad} violate the contract")

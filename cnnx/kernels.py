"""Raw kernels on numpy arrays, for people extending cnnx.

These run the C++ implementation of the active instruction set (``cnnx.show_config()["isa"]``)
with the GIL released. Arrays are never converted silently: a wrong dtype, ndim or shape raises
TypeError/ValueError naming the argument.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import _C

__all__ = [
    "gemm",
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "conv2d_algorithm",
    "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
    "local_response_norm_forward", "local_response_norm_backward",
    "batch_norm_forward", "batch_norm_backward",
    "relu_forward", "relu_backward", "add",
    "tanh_forward", "tanh_backward", "sigmoid_forward", "sigmoid_backward",
    "sgd_step", "adam_step",
]

_INT64_MAX = 2**63 - 1


def _flag(fn: str, name: str, value) -> bool:
    if value is True or value is False:  # the common case, kept cheap
        return value
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}(): argument '{name}' must be a bool, got {type(value).__name__}")
    return bool(value)


def _scalar(fn: str, name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}(): argument '{name}' must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{fn}(): argument '{name}' must be finite, got {value}")
    return value


def _int(fn: str, name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}(): argument '{name}' must be an int, got {type(value).__name__}")
    value = int(value)
    if not -_INT64_MAX <= value <= _INT64_MAX:
        raise ValueError(f"{fn}(): argument '{name}' does not fit in 64 bits, got {value}")
    return value


def _pair(fn: str, name: str, value, allow_none: bool = False, minimum: int | None = None) -> tuple:
    """An int (used for both dimensions) or a pair of ints, as PyTorch's size arguments; with
    ``minimum``, a ValueError when an entry is below it."""
    if type(value) is int and -_INT64_MAX <= value <= _INT64_MAX:  # the common case, kept cheap
        pair = value, value
    elif isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{fn}(): argument '{name}' must be an int or a pair of ints, got {value!r}")
        if allow_none:
            return tuple(None if v is None else _int(fn, name, v) for v in value)
        pair = _int(fn, name, value[0]), _int(fn, name, value[1])
    elif allow_none and value is None:
        return None, None
    else:
        v = _int(fn, name, value)
        pair = v, v
    if minimum is not None and min(pair) < minimum:
        what = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{fn}(): argument '{name}' must be {what}, got {value!r}")
    return pair


def _batched(fn: str, name: str, x):
    """A 3-D (C, H, W) array gets a batch axis, as PyTorch's pooling allows; (array, had_batch)."""
    if type(x) is np.ndarray or isinstance(x, np.ndarray):
        if x.ndim == 4:
            return x, True
        if x.ndim == 3:
            return x[np.newaxis], False
        if x.ndim != 4:
            raise ValueError(f"{fn}(): argument '{name}' must be 3-D (C, H, W) or 4-D (N, C, H, W), "
                             f"got {x.ndim}-D array of shape {x.shape}")
    return x, True


def gemm(a: np.ndarray, b: np.ndarray, *, trans_a: bool = False, trans_b: bool = False,
         alpha: float = 1.0, beta: float = 0.0, out: np.ndarray | None = None) -> np.ndarray:
    """General matrix multiply: ``alpha * op(a) @ op(b) + beta * out``.

    ``op(x)`` is ``x.T`` when the matching ``trans_*`` flag is set. ``a`` and ``b`` are 2-D float32
    or float64 arrays of the same dtype. Without ``out`` a new C-ordered array is returned (``beta``
    must then be 0); with ``out`` (same dtype, shape ``(m, n)``, C or Fortran order or a slice of one)
    the result is written there and ``out`` is returned. ``out`` may alias ``a`` or ``b``: the aliased
    operand is copied first. With ``beta == 0`` the old contents of ``out`` are ignored (NaN included).

    Results are bitwise identical for any thread count. Inputs of any strided layout are accepted
    (non-unit-stride ones are copied once).
    """
    trans_a = _flag("gemm", "trans_a", trans_a)
    trans_b = _flag("gemm", "trans_b", trans_b)
    alpha = _scalar("gemm", "alpha", alpha)
    beta = _scalar("gemm", "beta", beta)
    return _C.gemm(a, b, out, trans_a, trans_b, alpha, beta)


def _conv_args(fn: str, stride, padding, dilation, groups):
    return (_pair(fn, "stride", stride, minimum=1), _pair(fn, "padding", padding, minimum=0),
            _pair(fn, "dilation", dilation, minimum=1), _int(fn, "groups", groups))


def conv2d_forward(input: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, *,
                   stride=1, padding=0, dilation=1, groups: int = 1, scale: np.ndarray | None = None,
                   shift: np.ndarray | None = None, relu: bool = False) -> np.ndarray:
    """2-D convolution (cross-correlation) of an NCHW batch with OIHW weights; PyTorch's semantics.

    ``input`` is ``(N, C, H, W)``, ``weight`` ``(K, C // groups, KH, KW)``, ``bias`` ``(K,)`` or None,
    all float32 or all float64. ``stride``, ``padding`` (zeros, per side) and ``dilation`` are ints or
    ``(h, w)`` pairs. Returns ``(N, K, OH, OW)`` with ``OH = (H + 2*ph - dh*(KH-1) - 1) // sh + 1``.
    Pointwise (1x1) layers run as one GEMM per image, depthwise (``groups == C``) layers on a direct
    kernel, the rest on a direct kernel (output channels in vectors, no column matrix) or as tiled
    im2col + GEMM, whichever the shape suits.

    Optional tail, fused into the kernel where it can be: ``scale`` and ``shift`` (both ``(K,)``, given
    together) make each output ``y * scale[k] + shift[k]`` (a multiply then an add, as batch norm in
    evaluation), then ``relu`` makes it ``0 if y < 0 else y``. The result is bitwise equal to the
    separate passes.
    """
    relu = _flag("conv2d_forward", "relu", relu)
    return _C.conv2d_forward(input, weight, bias, *_conv_args("conv2d_forward", stride, padding, dilation, groups),
                             scale, shift, relu)


def conv2d_backward_input(grad_output: np.ndarray, weight: np.ndarray, input_size, *, stride=1, padding=0,
                          dilation=1, groups: int = 1) -> np.ndarray:
    """Gradient of ``conv2d_forward`` with respect to its input (a transposed convolution).

    ``input_size`` is the forward input's ``(H, W)`` (several input sizes give the same output size).
    Returns ``(N, C, H, W)`` with ``C = weight.shape[1] * groups``.
    """
    fn = "conv2d_backward_input"
    size = _pair(fn, "input_size", input_size, minimum=1)
    return _C.conv2d_backward_input(grad_output, weight, size, *_conv_args(fn, stride, padding, dilation, groups))


def conv2d_backward_weight(input: np.ndarray, grad_output: np.ndarray, kernel_size, *, stride=1, padding=0,
                           dilation=1, groups: int = 1, bias: bool = False):
    """Gradients of ``conv2d_forward`` with respect to the weight and (when ``bias``) the bias.

    Returns ``(grad_weight, grad_bias)``: grad_weight ``(K, C // groups, KH, KW)``; grad_bias ``(K,)``,
    the sum of ``grad_output`` over N, OH and OW, or None when ``bias`` is False. The sum over the
    batch runs in a fixed order, so results are bitwise repeatable.
    """
    fn = "conv2d_backward_weight"
    size = _pair(fn, "kernel_size", kernel_size, minimum=1)
    return _C.conv2d_backward_weight(input, grad_output, size, *_conv_args(fn, stride, padding, dilation, groups),
                                     _flag(fn, "bias", bias))


def conv2d_algorithm(input_shape, weight_shape, *, stride=1, padding=0, dilation=1, groups: int = 1,
                     dtype="float32", pass_: str = "forward") -> str:
    """Which algorithm the convolution kernels run for one pass of a layer, under the current ISA and
    ``cnnx._C.set_conv_algorithm`` setting: ``"gemm"`` (im2col, or the image itself for 1x1, on the
    GEMM), ``"direct"``, ``"winograd"``, ``"rows"``, ``"depthwise"``, or ``"ref"`` on the reference ISA.

    ``input_shape`` ``(N, C, H, W)`` and ``weight_shape`` ``(K, C // groups, KH, KW)`` describe the layer
    as ``conv2d_forward`` takes it, whatever the pass; ``pass_`` is ``"forward"``, ``"backward_input"``
    or ``"backward_weight"``; ``dtype`` is ``"float32"``/``"float64"`` or a numpy dtype. Computes
    nothing: it asks the rules the kernels follow (a forced algorithm that cannot compute the layer
    reports the one that runs instead).
    """
    fn = "conv2d_algorithm"
    shapes = []
    for name, shape in (("input_shape", input_shape), ("weight_shape", weight_shape)):
        if not isinstance(shape, (tuple, list)) or len(shape) != 4:
            raise ValueError(f"{fn}(): argument '{name}' must be 4 ints, got {shape!r}")
        shapes.append(tuple(_int(fn, name, v) for v in shape))
    if not isinstance(pass_, str):
        raise TypeError(f"{fn}(): argument 'pass_' must be a str, got {type(pass_).__name__}")
    try:
        kind = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{fn}(): argument 'dtype' must be a dtype, got {dtype!r}") from None
    if kind not in (np.float32, np.float64):
        raise ValueError(f"{fn}(): argument 'dtype' must be float32 or float64, got {kind}")
    return _C.conv2d_algorithm(pass_, shapes[0], shapes[1], *_conv_args(fn, stride, padding, dilation, groups),
                               kind.name)


# ---------------------------------------------------------------------------------------------
# pooling
#
# Inputs are (N, C, H, W) or (C, H, W) float32/float64 arrays; size arguments are an int or an
# (h, w) pair. The output size follows PyTorch: floor((H + 2*pad - dilation*(kernel-1) - 1) /
# stride) + 1, or ceil in ceil_mode, where the last window must start inside the input or its
# left padding. padding may be at most half of kernel_size. Results are bitwise identical for any
# thread count; outputs are new C-ordered arrays.


def max_pool2d_forward(input: np.ndarray, kernel_size, stride=None, padding=0, dilation=1,
                       ceil_mode: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """2-D max pooling: ``(output, indices)``.

    ``indices`` (int64, the shape of ``output``) holds for each output the flat position
    ``h * W + w`` of its maximum inside the input plane, PyTorch's convention. A window holding NaN
    gives NaN (with the index of its last NaN); on ties the first element in row-major order wins,
    as in PyTorch on the CPU. ``stride`` defaults to ``kernel_size``.
    """
    fn = "max_pool2d_forward"
    kh, kw = _pair(fn, "kernel_size", kernel_size)
    sh, sw = (kh, kw) if stride is None else _pair(fn, "stride", stride)
    ph, pw = _pair(fn, "padding", padding)
    dh, dw = _pair(fn, "dilation", dilation)
    x, batched = _batched(fn, "input", input)
    y, idx = _C.max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh, dw, _flag(fn, "ceil_mode", ceil_mode))
    return (y, idx) if batched else (y[0], idx[0])


def max_pool2d_backward(grad_output: np.ndarray, indices: np.ndarray, input_size) -> np.ndarray:
    """Gradient of max pooling with respect to its input, of spatial size ``input_size = (H, W)``.

    ``grad_input`` is zero except at the positions in ``indices`` (from ``max_pool2d_forward``),
    which receive the sum of the gradients of the outputs they won. An index outside the input
    plane raises ValueError (nothing is written out of bounds).
    """
    fn = "max_pool2d_backward"
    h, w = _pair(fn, "input_size", input_size)
    gy, batched = _batched(fn, "grad_output", grad_output)
    if not batched and isinstance(indices, np.ndarray) and indices.ndim == 3:
        indices = indices[np.newaxis]
    gx = _C.max_pool2d_backward(gy, indices, h, w)
    return gx if batched else gx[0]


def _avg_args(fn, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    kh, kw = _pair(fn, "kernel_size", kernel_size)
    sh, sw = (kh, kw) if stride is None else _pair(fn, "stride", stride)
    ph, pw = _pair(fn, "padding", padding)
    divisor = 0
    if divisor_override is not None:
        divisor = _int(fn, "divisor_override", divisor_override)
        if divisor == 0:
            raise ValueError(f"{fn}(): argument 'divisor_override' must be non-zero or None, got 0")
    return (kh, kw, sh, sw, ph, pw, _flag(fn, "ceil_mode", ceil_mode),
            _flag(fn, "count_include_pad", count_include_pad), divisor)


def avg_pool2d_forward(input: np.ndarray, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                       count_include_pad: bool = True, divisor_override=None) -> np.ndarray:
    """2-D average pooling with PyTorch's divisor.

    Each output is the sum of its window's elements inside the input divided by
    ``divisor_override`` when given, else by the window size clipped to the padded input
    (``count_include_pad=True``) or by the number of elements inside the input (``False``).
    """
    fn = "avg_pool2d_forward"
    args = _avg_args(fn, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    x, batched = _batched(fn, "input", input)
    y = _C.avg_pool2d_forward(x, *args)
    return y if batched else y[0]


def avg_pool2d_backward(grad_output: np.ndarray, input_size, kernel_size, stride=None, padding=0,
                        ceil_mode: bool = False, count_include_pad: bool = True,
                        divisor_override=None) -> np.ndarray:
    """Gradient of ``avg_pool2d_forward`` for an input of spatial size ``input_size = (H, W)``.

    Every element of a window receives its output's gradient divided by that output's divisor.
    ``grad_output`` must have the output shape those arguments give.
    """
    fn = "avg_pool2d_backward"
    h, w = _pair(fn, "input_size", input_size)
    args = _avg_args(fn, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    gy, batched = _batched(fn, "grad_output", grad_output)
    gx = _C.avg_pool2d_backward(gy, h, w, *args)
    return gx if batched else gx[0]


def adaptive_avg_pool2d_forward(input: np.ndarray, output_size) -> np.ndarray:
    """Adaptive average pooling to ``output_size`` (an int, or a pair whose None entries keep the
    input's size).

    Output row ``i`` averages input rows ``floor(i*H/OH)`` to ``ceil((i+1)*H/OH) - 1`` (PyTorch's
    windows), likewise for columns; the output may be larger than the input.
    """
    fn = "adaptive_avg_pool2d_forward"
    oh, ow = _pair(fn, "output_size", output_size, allow_none=True)
    x, batched = _batched(fn, "input", input)
    if isinstance(x, np.ndarray) and x.ndim == 4:
        oh = x.shape[2] if oh is None else oh
        ow = x.shape[3] if ow is None else ow
    elif oh is None or ow is None:
        oh, ow = 0, 0  # _C names the bad input
    y = _C.adaptive_avg_pool2d_forward(x, oh, ow)
    return y if batched else y[0]


def adaptive_avg_pool2d_backward(grad_output: np.ndarray, input_size) -> np.ndarray:
    """Gradient of ``adaptive_avg_pool2d_forward`` for an input of spatial size ``input_size = (H, W)``:
    each window's elements receive its output's gradient divided by the window size."""
    fn = "adaptive_avg_pool2d_backward"
    h, w = _pair(fn, "input_size", input_size)
    gy, batched = _batched(fn, "grad_output", grad_output)
    gx = _C.adaptive_avg_pool2d_backward(gy, h, w)
    return gx if batched else gx[0]


# ---------------------------------------------------------------------------------------------
# local response normalisation


def local_response_norm_forward(input: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75,
                                k: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Local response normalisation across channels, PyTorch's convention: ``(output, scale)``.

    For channel ``c`` of an (N, C, H, W) input ``a``, ``scale_c = k + alpha / size * sum(a_j**2)``
    over channels ``j`` from ``c - size//2`` to ``c + (size-1)//2`` (clipped to the tensor) and
    ``output_c = a_c / scale_c**beta``. ``scale`` is what the backward needs. The AlexNet paper's
    alpha is not divided by ``size``: pass ``alpha = size * alpha_paper``.
    """
    fn = "local_response_norm_forward"
    return _C.local_response_norm_forward(input, _int(fn, "size", size), _scalar(fn, "alpha", alpha),
                                          _scalar(fn, "beta", beta), _scalar(fn, "k", k))


def local_response_norm_backward(grad_output: np.ndarray, input: np.ndarray, output: np.ndarray,
                                 scale: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75,
                                 k: float = 1.0) -> np.ndarray:
    """Exact gradient of ``local_response_norm_forward`` with respect to its input, from the
    forward's ``input``, ``output`` and ``scale``:
    ``grad_j = g_j * scale_j**-beta - 2*alpha*beta/size * a_j * sum(g_c * output_c / scale_c)`` over
    the channels ``c`` whose window holds ``j``.
    """
    fn = "local_response_norm_backward"
    return _C.local_response_norm_backward(grad_output, input, output, scale, _int(fn, "size", size),
                                           _scalar(fn, "alpha", alpha), _scalar(fn, "beta", beta),
                                           _scalar(fn, "k", k))


# ---------------------------------------------------------------------------------------------
# batch normalisation


def batch_norm_forward(input: np.ndarray, weight, bias, running_mean, running_var, training: bool,
                       momentum: float = 0.1, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch normalisation of an (N, C, H, W) input per channel: ``(output, save_mean, save_invstd)``.

    ``output = (input - mean) * invstd * weight + bias``; ``weight`` and ``bias`` may be None (1
    and 0). In training the statistics are the batch's (biased variance, sums in double) and,
    when given, ``running_mean`` / ``running_var`` are updated in place:
    ``running = (1 - momentum) * running + momentum * batch_stat``, with the unbiased variance
    (PyTorch's rule; a cumulative average, PyTorch's ``momentum=None``, is the caller's job). In
    evaluation (``training=False``) the running statistics are used and required. ``save_mean`` and
    ``save_invstd = 1/sqrt(var + eps)`` are the statistics used, for the backward. A batch with no
    values leaves the running statistics alone and saves zeros.
    """
    fn = "batch_norm_forward"
    return _C.batch_norm_forward(input, weight, bias, running_mean, running_var,
                                 _flag(fn, "training", training), _scalar(fn, "momentum", momentum),
                                 _scalar(fn, "eps", eps))


def batch_norm_backward(grad_output: np.ndarray, input: np.ndarray, weight, save_mean: np.ndarray,
                        save_invstd: np.ndarray, training: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``batch_norm_forward``: ``(grad_input, grad_weight, grad_bias)``.

    ``save_mean`` / ``save_invstd`` come from the forward. With ``training=True`` the batch
    statistics are differentiated too; with ``training=False`` they were constants, so
    ``grad_input = grad_output * weight * invstd``. ``grad_weight`` and ``grad_bias`` are returned
    even when ``weight`` is None (the caller ignores them).
    """
    fn = "batch_norm_backward"
    return _C.batch_norm_backward(grad_output, input, weight, save_mean, save_invstd,
                                  _flag(fn, "training", training))


# ---------------------------------------------------------------------------------------------
# elementwise


def relu_forward(input: np.ndarray, inplace: bool = False) -> np.ndarray:
    """``max(input, 0)`` elementwise on a float32/float64 array of any shape, PyTorch's ``relu``.

    Computed as ``0 if x < 0 else x``: NaN stays NaN and -0.0 stays -0.0 (as torch.relu; numpy's
    ``np.maximum(x, 0)`` gives +0.0 there). With ``inplace=True`` the result is written into
    ``input`` (which must be writeable and C-contiguous) and ``input`` is returned; otherwise a new
    C-ordered array (a strided input is read through a dense copy).
    """
    return _C.relu_forward(input, _flag("relu_forward", "inplace", inplace))


def relu_backward(grad_output: np.ndarray, output: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of ``relu_forward`` from its ``output``: ``0 where output <= 0 else grad_output``.

    PyTorch's ``threshold_backward(grad_output, output, 0)``: an infinite or NaN gradient where the
    output is <= 0 gives 0 (``grad_output * (output > 0)`` would give NaN), and a NaN output passes
    its gradient through. Both arrays have one shape and dtype (no broadcasting). With ``out``
    (same shape and dtype, writeable, C-contiguous; it may be ``grad_output`` or ``output`` itself)
    the result is written there and ``out`` is returned.
    """
    return _C.relu_backward(grad_output, output, out)


def add(a: np.ndarray, b: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """``a + b`` for float32/float64 arrays of one shape and dtype (no broadcasting, no casting).

    Bitwise equal to numpy's ``a + b`` (one IEEE addition per element), multithreaded, and the
    output comes from cnnx's allocator cache, so repeated calls do not page-fault. With ``out``
    (same shape and dtype, writeable, C-contiguous; it may be ``a`` or ``b`` itself: ``a += b``)
    the result is written there and ``out`` is returned.
    """
    return _C.add(a, b, out)


def tanh_forward(input: np.ndarray, inplace: bool = False) -> np.ndarray:
    """``tanh(input)`` elementwise on a float32/float64 array of any shape, multithreaded.

    Not bitwise numpy's ``np.tanh``: a vector approximation (range reduction and polynomials, see
    docs/kernels.md) within 2 ulp of the exact value for float32 and 4 ulp for float64 (measured: 1
    ulp for both). Odd (``tanh(-0.0)`` is -0.0), exactly +-1 where the exact value rounds there and
    at +-inf, NaN in gives NaN out. ``CNNX_ISA=ref`` uses the C library's ``tanh``. With
    ``inplace=True`` the result is written into ``input`` (writeable and C-contiguous) and
    ``input`` is returned; otherwise a new C-ordered array.
    """
    return _C.tanh_forward(input, _flag("tanh_forward", "inplace", inplace))


def tanh_backward(grad_output: np.ndarray, output: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of ``tanh_forward`` from its ``output``: ``grad_output * (1 - output * output)``.

    Bitwise numpy's expression (``output * output``, ``1 -`` that, then the product; no fused
    multiply-add). Both arrays have one shape and dtype (no broadcasting). With ``out`` (same shape
    and dtype, writeable, C-contiguous; it may be ``grad_output`` or ``output`` itself) the result is
    written there and ``out`` is returned.
    """
    return _C.tanh_backward(grad_output, output, out)


def sigmoid_forward(input: np.ndarray, inplace: bool = False) -> np.ndarray:
    """``1 / (1 + exp(-input))`` elementwise on a float32/float64 array of any shape, multithreaded.

    Computed without overflow (``exp(-|x|)``, then ``1/(1+e)`` or ``e/(1+e)``): never negative, never
    NaN for a non-NaN input, exactly 0 and 1 where the exact value rounds there. Within 2 ulp of the
    exact value for float32 and 4 ulp for float64 (measured: 2); not bitwise numpy's. ``inplace`` as
    in ``tanh_forward``.
    """
    return _C.sigmoid_forward(input, _flag("sigmoid_forward", "inplace", inplace))


def sigmoid_backward(grad_output: np.ndarray, output: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of ``sigmoid_forward`` from its ``output``: ``grad_output * output * (1 - output)``.

    Bitwise numpy's expression, evaluated left to right (``(g * y) * (1 - y)``; PyTorch groups it as
    ``g * (1 - y) * y``, which can differ in the last bit). ``out`` as in ``tanh_backward``.
    """
    return _C.sigmoid_backward(grad_output, output, out)


def _unit_interval(fn: str, name: str, value) -> float:
    value = _scalar(fn, name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{fn}(): argument '{name}' must be in [0, 1), got {value}")
    return value


def sgd_step(param: np.ndarray, grad: np.ndarray, momentum_buffer: np.ndarray | None = None, *, lr: float,
             momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
             maximize: bool = False, first_step: bool = False) -> None:
    """One SGD step on ``param`` (and ``momentum_buffer``) in place: ``cnnx.optim.SGD``'s update.

    Per element, with ``g = grad``: ``g = -g`` (maximize); ``g = param * weight_decay + g`` (if
    weight_decay); with momentum, ``buf = g`` on the ``first_step``, else ``buf = momentum * buf +
    (1 - dampening) * g``, then ``g = g + momentum * buf`` (nesterov) or ``buf``; finally
    ``param -= lr * g``. Bitwise ``SGD``'s numpy code: the same float operations in the same order,
    each hyper-parameter rounded to the arrays' dtype as numpy rounds a Python float (and ``1 -
    dampening`` computed in double first, as Python does). One fused pass, multithreaded.

    ``grad`` and ``momentum_buffer`` have the shape and dtype (float32/float64) of ``param``; the
    parameter and the buffer must be writeable and C-contiguous (a strided gradient is read through
    a copy), and no two of the arrays may share memory. ``momentum_buffer`` is required when
    ``momentum`` is not 0 and is then updated (its contents are ignored on the first step); with
    ``momentum == 0`` it is not touched. Hyper-parameters must be finite numbers.
    """
    fn = "sgd_step"
    _C.sgd_step(param, grad, momentum_buffer, _scalar(fn, "lr", lr), _scalar(fn, "momentum", momentum),
                _scalar(fn, "dampening", dampening), _scalar(fn, "weight_decay", weight_decay),
                _flag(fn, "nesterov", nesterov), _flag(fn, "maximize", maximize), _flag(fn, "first_step", first_step))


def adam_step(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray,
              max_exp_avg_sq: np.ndarray | None = None, *, step: int, lr: float = 1e-3, betas=(0.9, 0.999),
              eps: float = 1e-8, weight_decay: float = 0.0, decoupled: bool = False, maximize: bool = False) -> None:
    """One Adam step (AdamW with ``decoupled=True``) on ``param`` and its moments in place, at step
    count ``step`` (1 for the first update): ``cnnx.optim.Adam``'s / ``AdamW``'s update.

    Per element: ``g = -grad`` (maximize) or ``grad``; weight decay as ``g = param * weight_decay +
    g`` or, decoupled, ``param *= 1 - lr * weight_decay``; ``exp_avg += (g - exp_avg) * (1 - beta1)``;
    ``exp_avg_sq = exp_avg_sq * beta2 + g * g * (1 - beta2)``; with ``max_exp_avg_sq`` (AMSGrad) it
    becomes ``np.maximum(max_exp_avg_sq, exp_avg_sq)`` and replaces ``exp_avg_sq`` below; then
    ``param += exp_avg / (sqrt(exp_avg_sq) / sqrt(1 - beta2**step) + eps) * -(lr / (1 - beta1**step))``.
    The bias corrections are computed here in Python exactly as ``Adam`` does; the rest is bitwise
    ``Adam``'s numpy code (same float operations, same order, hyper-parameters rounded to the arrays'
    dtype as numpy rounds a Python float). One fused pass, multithreaded.

    Every array has the shape and dtype (float32/float64) of ``param``; all but ``grad`` must be
    writeable and C-contiguous (a strided gradient is read through a copy), and no two may share
    memory. ``betas`` lie in [0, 1), ``step`` is a positive int, the other hyper-parameters finite.
    """
    fn = "adam_step"
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{fn}(): argument 'betas' must be a pair (beta1, beta2), got {betas!r}")
    beta1, beta2 = _unit_interval(fn, "betas[0]", betas[0]), _unit_interval(fn, "betas[1]", betas[1])
    step = _int(fn, "step", step)
    if step < 1:
        raise ValueError(f"{fn}(): argument 'step' must be >= 1 (the count of updates including this one), got {step}")
    lr = _scalar(fn, "lr", lr)
    step_size = lr / (1.0 - beta1 ** step)  # as Adam._step computes them
    bc2_sqrt = math.sqrt(1.0 - beta2 ** step)
    _C.adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, _scalar(fn, "eps", eps),
                 _scalar(fn, "weight_decay", weight_decay), step_size, bc2_sqrt, _flag(fn, "decoupled", decoupled),
                 _flag(fn, "maximize", maximize))

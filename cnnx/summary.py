"""``cnnx.summary``: per-layer shapes, parameters, MACs, activations and memory of any ``Module``.

``summary(model, input_size)`` runs one forward pass on zeros without gradients and without
computing anything heavy: convolutions, matrix products, pooling and normalisation go through
shape rules (``cnnx/_trace.py``) that record what the kernel would have done. Forward hooks on
every module attribute each kernel call to the leaf layer that made it; calls that a container
makes itself (``F.max_pool2d`` in a ``forward``) get a row of their own. Counting conventions are
in docs/summary.md and match ``shared/docs/anchors/reference_figures.md``:

* MACs: multiply-accumulates of convolutions (``K*OH*OW*(C/groups)*KH*KW``) and matrix products
  (``in*out`` per row), per image. FLOPs = 2 x MACs, always labelled as such.
* params: parameters (weights, biases, BN gamma/beta), each counted once; buffers (BN running
  statistics) are not parameters.
* activations: elements of the input and of every conv, FC, pooling and LRN output, per image (the
  seed's VGG16 table). Activation functions, batch norm, dropout, reshapes and identity pooling
  are not counted.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from . import _table, kernels
from ._trace import KernelCall, intercept
from .autograd import no_grad
from .creation import from_numpy
from .nn.module import Module
from .tensor import Tensor

__all__ = ["summary", "Summary", "Row", "TrainingMemory", "OPTIMIZER_SLOTS"]

# Kernel kinds whose output the activation count keeps (the seed's tables: conv, pool, FC; and
# LRN, as in the AlexNet table of reference_figures.md).
COUNTED_KINDS = frozenset({"conv", "linear", "pool", "lrn"})

# Optimizer state per trainable parameter, in parameter-sized buffers.
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "adam": 2}


@dataclass
class Row:
    """One leaf layer call (or one kernel call a container makes itself, type ``F.<op>``).

    Shapes are shown for the summary's batch size; ``macs`` and ``activations`` are per image;
    ``activation_bytes`` is for the whole batch. ``activations`` is 0 for layers the count skips
    (``output_elements`` always has the output's size).
    """

    name: str
    type: str
    input_shape: tuple | None
    output_shape: tuple | None
    kernel_size: tuple | None = None
    stride: tuple | None = None
    padding: tuple | None = None
    dilation: tuple | None = None
    groups: int | None = None
    trainable_params: int = 0
    non_trainable_params: int = 0
    macs: int = 0
    output_elements: int = 0
    activations: int = 0
    activation_bytes: int = 0
    kinds: tuple = ()
    forward_ms: float | None = None
    backward_ms: float | None = None
    window: str = ""

    @property
    def params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def passthrough(self) -> bool:
        """No parameters, no MACs, no counted activations (ReLU, Dropout, Flatten, identity pool)."""
        return not (self.params or self.macs or self.activations)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["params"], d["flops"] = self.params, self.flops
        for k in ("input_shape", "output_shape", "kernel_size", "stride", "padding", "dilation", "kinds"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d


@dataclass(frozen=True)
class TrainingMemory:
    """A training step's memory, in bytes: parameters + their gradients + optimizer state +
    activations kept for backward + the activations' gradients (CS231n's "x2 for backward").
    Workspace, framework overhead and allocator slack are not included."""

    optimizer: str
    batch_size: int
    parameters: int
    gradients: int
    optimizer_state: int
    activations: int
    activation_gradients: int

    @property
    def total(self) -> int:
        return (self.parameters + self.gradients + self.optimizer_state + self.activations
                + self.activation_gradients)

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


@dataclass(repr=False)
class Summary:
    """What ``summary()`` returns: ``rows``, totals, memory, and renderers (``str``, Markdown, dict)."""

    model: str
    input_size: list
    batch_size: int
    dtype: str
    rows: list
    total_params: int
    trainable_params: int
    non_trainable_params: int
    untraced_params: int
    total_macs: int
    total_activations: int
    param_bytes: int
    trainable_param_bytes: int
    buffer_bytes: int
    activation_bytes: int
    itemsize: int
    optimizer: str = "momentum"
    profile: dict | None = field(default=None)
    depth: int | None = None  # rows merged per module this deep (None: every layer)

    @property
    def total_flops(self) -> int:
        """2 x MACs (one multiply and one add each)."""
        return 2 * self.total_macs

    def training_memory(self, optimizer: str | None = None, batch_size: int | None = None) -> TrainingMemory:
        """Estimate a training step's memory for ``optimizer`` ("sgd": no state, "momentum": one
        buffer per parameter, "adam": two) at ``batch_size`` (default: the summary's)."""
        optimizer = self.optimizer if optimizer is None else optimizer
        if optimizer not in OPTIMIZER_SLOTS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZER_SLOTS)}, got {optimizer!r}")
        batch = self.batch_size if batch_size is None else batch_size
        acts = self.total_activations * self.itemsize * batch
        return TrainingMemory(optimizer, batch, self.param_bytes, self.trainable_param_bytes,
                              OPTIMIZER_SLOTS[optimizer] * self.trainable_param_bytes, acts, acts)

    @property
    def training_bytes(self) -> int:
        return self.training_memory().total

    # ---- rendering ------------------------------------------------------------------------
    def _columns(self, all_rows: bool):
        rows = [r for r in self.rows if all_rows or not r.passthrough]
        prof = self.profile is not None
        head = ["layer", "type", "output shape", "kernel", "params", "MACs", "activations"]
        align = "llllrrr"
        if prof:
            head += ["fwd ms", "bwd ms", "algorithm fwd/dx/dw"]
            align += "rrl"
        body = []
        for r in rows:
            cells = [r.name, r.type, _shape(r.output_shape), r.window, _table.count(r.params),
                     _table.count(r.macs), _table.count(r.activations) if r.activations else "-"]
            if prof:
                cells += [_ms(r.forward_ms), _ms(r.backward_ms), _algorithms(r, self.itemsize)]
            body.append(cells)
        return head, body, align, rows

    def _hidden_note(self, shown) -> str | None:
        shown = {id(r) for r in shown}
        hidden = Counter(r.type for r in self.rows if id(r) not in shown)
        if not hidden:
            return None
        kinds = ", ".join(f"{t} x{n}" if n > 1 else t for t, n in hidden.most_common())
        return (f"{sum(hidden.values())} pass-through layers not shown ({kinds}): "
                "no parameters, MACs or counted activations; all_rows=True (--all) lists them")

    def _totals(self) -> list:
        b = self.batch_size
        tm = self.training_memory()
        state = {"sgd": "", "momentum": " + momentum", "adam": " + Adam m, v"}[tm.optimizer]
        lines = [
            ("params", f"{_table.count(self.total_params)} (trainable {_table.count(self.trainable_params)}, "
                       f"non-trainable {_table.count(self.non_trainable_params)})"),
            ("MACs", f"{_table.count(self.total_macs)} per image ({_table.human(self.total_macs)}MAC)"),
            ("FLOPs", f"{_table.count(self.total_flops)} per image ({_table.human(self.total_flops)}FLOP) "
                      "= 2 x MACs"),
            ("activations", f"{_table.count(self.total_activations)} per image " + (
                "(input + conv, FC, pooling and LRN outputs)" if self.depth is None else
                f"(input + conv, FC, pooling and LRN outputs; one per module at depth {self.depth})")),
            ("param memory", f"{_table.nbytes(self.param_bytes)}"
                             + (f"; buffers {_table.nbytes(self.buffer_bytes)}" if self.buffer_bytes else "")),
            ("activation memory", f"{_table.nbytes(self.activation_bytes)} forward, batch {b}"),
            ("training estimate", f"{_table.nbytes(tm.total)} = params + grads{state} + activations x 2, "
                                  f"batch {b}"),
        ]
        if self.untraced_params:
            lines.insert(1, ("not called", f"{_table.count(self.untraced_params)} of the params are in modules "
                                           "this forward did not call (e.g. training-only heads)"))
        if self.profile is not None:
            p = self.profile
            lines.append(("measured", f"forward {p['forward_ms']:.2f} ms, backward {p['backward_ms']:.2f} ms "
                                      f"(median of {p['runs']}, batch {b}, {p['mode']} mode; outside layers: "
                                      f"forward {p['other_forward_ms']:.2f} ms, backward "
                                      f"{p['other_backward_ms']:.2f} ms)"))
            if p["training_only_forward_ms"] or p["training_only_backward_ms"]:
                lines.append(("", f"and layers that run in training mode only (not in the table): forward "
                                  f"{p['training_only_forward_ms']:.2f} ms, backward "
                                  f"{p['training_only_backward_ms']:.2f} ms"))
        return lines

    def _title(self) -> str:
        shapes = ", ".join(_shape((self.batch_size, *s)) for s in self.input_size)
        depth = "" if self.depth is None else f", depth {self.depth}"
        return f"{self.model} summary: input {shapes}, {self.dtype}{depth}"

    def to_string(self, all_rows: bool = False) -> str:
        """The aligned table; ``all_rows`` also lists pass-through layers (ReLU, Dropout, ...)."""
        head, body, align, shown = self._columns(all_rows)
        parts = [self._title(), _table.render(head, body, align)]
        note = self._hidden_note(shown)
        if note:
            parts.append(note)
        width = max(len(k) for k, _ in self._totals())
        parts.append("\n".join(f"{k.ljust(width)}  {v}" for k, v in self._totals()))
        return "\n\n".join(parts)

    def __str__(self) -> str:
        return self.to_string()

    __repr__ = __str__  # the table, also when a REPL echoes the result

    def to_markdown(self, all_rows: bool = False) -> str:
        """The same table and totals as Markdown."""
        head, body, align, shown = self._columns(all_rows)
        parts = [f"### {self._title()}", _table.render(head, body, align, markdown=True)]
        note = self._hidden_note(shown)
        if note:
            parts.append(f"*{note}*")
        parts.append("\n".join(f"* **{k}**: {v}" for k, v in self._totals()))
        return "\n\n".join(parts)

    def to_dict(self) -> dict:
        """Every row and total as plain Python values (JSON-serialisable)."""
        return {
            "model": self.model, "input_size": [list(s) for s in self.input_size], "batch_size": self.batch_size,
            "dtype": self.dtype, "rows": [r.to_dict() for r in self.rows],
            "total_params": self.total_params, "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params, "untraced_params": self.untraced_params,
            "total_macs": self.total_macs, "total_flops": self.total_flops,
            "total_activations": self.total_activations, "param_bytes": self.param_bytes,
            "buffer_bytes": self.buffer_bytes, "activation_bytes": self.activation_bytes,
            "training_memory": self.training_memory().to_dict(), "profile": self.profile, "depth": self.depth,
        }


def _shape(shape) -> str:
    return "-" if shape is None else "[" + ", ".join(str(s) for s in shape) + "]"


def _ms(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _algorithms(r: Row, itemsize: int) -> str:
    """"winograd/direct/winograd": the algorithms a convolution row's forward, input gradient and weight
    gradient run (kernels.conv2d_algorithm, under the current ISA and setting); "-" for other rows."""
    # One convolution's own shapes: a row of several calls (depth grouping) has no kernel_size.
    if r.kinds != ("conv",) or r.kernel_size is None or r.input_shape is None or r.output_shape is None:
        return "-"
    weight = (r.output_shape[1], r.input_shape[1] // (r.groups or 1), *r.kernel_size)
    return "/".join(kernels.conv2d_algorithm(r.input_shape, weight, stride=r.stride, padding=r.padding,
                                             dilation=r.dilation or 1, groups=r.groups or 1,
                                             dtype=np.float32 if itemsize == 4 else np.float64, pass_=p)
                    for p in ("forward", "backward_input", "backward_weight"))


def _window(call: KernelCall | None) -> str:
    """"3x3 s2 p1 g32" for a convolution or pooling call."""
    if call is None:
        return ""
    if call.kernel.startswith("adaptive"):
        return "adaptive"
    k, s, p = call.kernel_size, call.stride, call.padding

    def pair(v):
        return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"
    text = f"{k[0]}x{k[1]} s{pair(s)}"
    if p and any(p):
        text += f" p{pair(p)}"
    if call.dilation and any(d != 1 for d in call.dilation):
        text += f" d{pair(call.dilation)}"
    if call.groups and call.groups != 1:
        text += f" g{call.groups}"
    return text


# --------------------------------------------------------------------------------------------
# The trace: forward hooks on every module, kernel calls routed to the current frame

def first_tensor(value):
    """The first Tensor in a module's output (a Tensor, or a tuple/list/dict holding some)."""
    if isinstance(value, Tensor):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else ()
    for v in items:
        t = first_tensor(v)
        if t is not None:
            return t
    return None


class _Frame:
    __slots__ = ("module", "name", "leaf", "input_shape", "calls", "t0", "stop", "first_row")

    def __init__(self, module, name, leaf, input_shape, first_row=0):
        self.module, self.name, self.leaf, self.input_shape = module, name, leaf, input_shape
        self.first_row = first_row  # rows made during this call start here
        self.calls = []   # a leaf's kernel calls
        self.t0 = 0.0     # the profiler's start time
        self.stop = None  # the profiler's set of graph nodes that made the inputs


class ModuleTracer:
    """Builds ``Row``s while a model runs: ``attach()`` registers the hooks, ``sink`` takes the
    kernel calls of ``_trace.intercept``. ``batch_size`` replaces the traced batch of 1 in shapes."""

    def __init__(self, model: Module, batch_size: int = 1):
        self.model = model
        self.batch_size = batch_size
        self.names = {}
        self.leaves = set()
        for name, m in model.named_modules():
            self.names[id(m)] = name
            if not any(c is not None for c in m._modules.values()):
                self.leaves.add(id(m))
        self.stack: list[_Frame] = []
        self.rows: list[Row] = []
        self.blocks: list[tuple] = []  # one per container call: (name, type, in, out, first row, end row)
        self.seen_params: set = set()
        self.ncalls: Counter = Counter()
        self.handles = []
        self.itemsize = 4  # of the traced dtype (trace() sets it)

    def attach(self) -> None:
        seen = set()
        for m in self.model.modules():
            if id(m) not in seen:
                seen.add(id(m))
                self.handles.append(m.register_forward_pre_hook(self.pre))
                self.handles.append(m.register_forward_hook(self.post))

    def detach(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    # shapes ------------------------------------------------------------------------------------
    def batched(self, shape):
        """A traced shape (batch 1) as shown for the summary's batch size."""
        if shape is None:
            return None
        shape = tuple(int(s) for s in shape)
        return (self.batch_size, *shape[1:]) if len(shape) >= 2 and shape[0] == 1 else shape

    def _unique_name(self, base: str) -> str:
        self.ncalls[base] += 1
        n = self.ncalls[base]
        return base if n == 1 else f"{base} ({n})"

    def _take_params(self, module) -> tuple[int, int]:
        """(trainable, non-trainable) sizes of ``module``'s own parameters not counted yet."""
        t = nt = 0
        for p in module._parameters.values():
            if p is not None and id(p) not in self.seen_params:
                self.seen_params.add(id(p))
                if p.requires_grad:
                    t += p._data.size
                else:
                    nt += p._data.size
        return t, nt

    def _row(self, name, type_, input_shape, out_shape, itemsize, calls, params=(0, 0)) -> Row:
        elements = math.prod(out_shape) if out_shape is not None else 0
        counted = any(c.kind in COUNTED_KINDS and not c.identity for c in calls)
        windowed = next((c for c in calls if c.kind in ("conv", "pool")), None)
        acts = elements if counted else 0
        return Row(name=name, type=type_, input_shape=self.batched(input_shape), output_shape=self.batched(out_shape),
                   kernel_size=windowed.kernel_size if windowed else None,
                   stride=windowed.stride if windowed else None,
                   padding=windowed.padding if windowed else None,
                   dilation=windowed.dilation if windowed else None,
                   groups=windowed.groups if windowed else None,
                   trainable_params=params[0], non_trainable_params=params[1],
                   macs=sum(c.macs for c in calls), output_elements=elements, activations=acts,
                   activation_bytes=acts * itemsize * self.batch_size,
                   kinds=tuple(dict.fromkeys(c.kind for c in calls)), window=_window(windowed))

    # hooks ---------------------------------------------------------------------------------------
    def pre(self, module, args):
        t = first_tensor(args)
        name = self.names.get(id(module), type(module).__name__)
        self.stack.append(_Frame(module, name, id(module) in self.leaves, t.shape if t is not None else None,
                                 len(self.rows)))

    def post(self, module, args, output):
        frame = self.stack.pop()
        if frame.leaf:
            out = first_tensor(output)
            self.rows.append(self._row(self._unique_name(frame.name or "(model)"), type(module).__name__,
                                       frame.input_shape, None if out is None else tuple(out.shape),
                                       out._data.dtype.itemsize if out is not None else self.itemsize,
                                       frame.calls, self._take_params(module)))
            self.on_leaf(frame, args, output)
        else:
            params = self._take_params(module)
            if any(params):  # parameters a container uses itself, outside any child
                row = Row(name=self._unique_name((frame.name or "(model)") + " (own)"), type=type(module).__name__,
                          input_shape=self.batched(frame.input_shape), output_shape=None,
                          trainable_params=params[0], non_trainable_params=params[1])
                self.rows.append(row)
            out = first_tensor(output)
            self.blocks.append((frame.name, type(module).__name__, frame.input_shape,
                                None if out is None else tuple(out.shape), frame.first_row, len(self.rows)))

    def on_leaf(self, frame, args, output) -> None:
        """Called after a leaf row is made (the profiler overrides it)."""

    def sink(self, call: KernelCall) -> None:
        frame = self.stack[-1] if self.stack else None
        if frame is not None and frame.leaf:
            frame.calls.append(call)
            return
        # A kernel a container calls itself (F.max_pool2d in its forward): a row of its own.
        prefix = f"{frame.name}." if frame is not None and frame.name else ""
        params = self._take_params(frame.module) if frame is not None else (0, 0)
        self.rows.append(self._row(self._unique_name(prefix + call.op), "F." + call.op, call.input_shape,
                                   call.output_shape, self.itemsize, [call], params))


def group_rows(rows: list, blocks: list, depth: int, batch_size: int, itemsize: int) -> list:
    """Merge the rows of each call of a module ``depth`` levels below the model into one row
    (torchinfo's depth); ``blocks`` are the tracer's container calls.

    A merged call keeps the sum of its rows' parameters, MACs and profiled times; its activations
    are its *output*, counted once per call when any of its layers has a counted output: the
    per-block convention of reference_figures.md's GoogLeNet (one output per Inception module) and
    ResNet (one per stage) tables. Rows not inside such a module stay as they are.
    """
    starts = {b[4]: b for b in blocks if b[0] and b[0].count(".") + 1 == depth and b[5] > b[4]}
    out, names, i = [], Counter(), 0
    while i < len(rows):
        if i not in starts:
            out.append(rows[i])
            i += 1
            continue
        name, type_, in_shape, out_shape, first, end = starts[i]
        members, i = rows[first:end], end
        names[name] += 1
        elements = math.prod(out_shape) if out_shape is not None else 0
        acts = elements if any(r.activations for r in members) else 0
        windowed = [r for r in members if r.window]
        w = windowed[0] if len(windowed) == 1 else None  # a wrapper of one conv/pool keeps its window
        out.append(Row(
            name=name if names[name] == 1 else f"{name} ({names[name]})", type=type_,
            input_shape=None if in_shape is None else (batch_size, *tuple(in_shape)[1:]),
            output_shape=None if out_shape is None else (batch_size, *out_shape[1:]),
            kernel_size=w and w.kernel_size, stride=w and w.stride, padding=w and w.padding,
            dilation=w and w.dilation, groups=w and w.groups,
            trainable_params=sum(r.trainable_params for r in members),
            non_trainable_params=sum(r.non_trainable_params for r in members),
            macs=sum(r.macs for r in members), output_elements=elements, activations=acts,
            activation_bytes=acts * itemsize * batch_size,
            kinds=tuple(dict.fromkeys(k for r in members for k in r.kinds)),
            forward_ms=_sum_or_none(r.forward_ms for r in members),
            backward_ms=_sum_or_none(r.backward_ms for r in members),
            window=w.window if w else f"{len(members)} layers"))
    return out


def _sum_or_none(values):
    values = [v for v in values if v is not None]
    return sum(values) if values else None


def _input_sizes(input_size) -> list:
    """(C, H, W) or a list of such (one per forward argument) as a list of int tuples."""
    def one(s):
        if isinstance(s, int) or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in s):
            raise TypeError(f"summary(): input_size must be a tuple of ints such as (3, 224, 224) or a list of "
                            f"them, got {input_size!r}")
        if any(v < 1 for v in s):
            raise ValueError(f"summary(): input sizes must be positive, got {tuple(s)}")
        return tuple(int(v) for v in s)
    if isinstance(input_size, (tuple, list)) and input_size and all(isinstance(s, (tuple, list)) for s in input_size):
        return [one(s) for s in input_size]
    if isinstance(input_size, (tuple, list)):
        return [one(input_size)]
    raise TypeError(f"summary(): input_size must be a tuple of ints such as (3, 224, 224), got {input_size!r}")


def _model_dtype(model: Module, dtype):
    if dtype is not None:
        return np.dtype(dtype)
    for p in model.parameters():
        if p._data.dtype.kind == "f":
            return p._data.dtype
    return np.dtype(np.float32)


def trace(model: Module, sizes: list, dtype, batch_size: int = 1, tracer_cls=ModuleTracer):
    """Run ``model`` once on zeros (batch 1, eval mode, no grad) with the shape rules active;
    returns the tracer (rows in execution order). Modes and the model's state are left unchanged."""
    tracer = tracer_cls(model, batch_size)
    tracer.itemsize = dtype.itemsize
    inputs = [from_numpy(np.zeros((1, *s), dtype)) for s in sizes]
    modes = [(m, m.training) for m in model.modules()]
    tracer.attach()
    try:
        model.eval()
        # Zeros through uninitialised weights (nn.init.no_init) may make inf/nan in a user's own
        # elementwise code: irrelevant to shapes, so numpy's warnings are silenced.
        with no_grad(), intercept(sink=tracer.sink), np.errstate(all="ignore"):
            model(*inputs)
    finally:
        tracer.detach()
        for m, mode in modes:
            m.__dict__["training"] = mode
    if tracer.stack:  # pragma: no cover - a hook pair did not match (an exception is raised above)
        raise RuntimeError("summary(): unbalanced module calls during the trace")
    return tracer


def summary(model: Module, input_size, batch_size: int = 1, *, dtype=None, optimizer: str = "momentum",
            profile: bool = False, profile_runs: int = 3, depth: int | None = None) -> Summary:
    """Per-layer table of ``model`` for inputs of ``input_size`` ((C, H, W), or a list of them for a
    model whose forward takes several tensors).

    Traces one forward pass on zeros without computing convolutions or products (well under a
    second for any zoo model) and returns a ``Summary``: ``rows`` (one per leaf layer call),
    ``total_params``, ``trainable_params``, ``total_macs``, ``total_flops`` (= 2 x MACs),
    ``total_activations``, ``param_bytes``, ``activation_bytes`` and ``training_memory()``;
    ``print()`` it, or use ``to_markdown()`` / ``to_dict()``. MACs and activations are per image;
    memory is for ``batch_size`` images; ``optimizer`` ("sgd", "momentum", "adam") sets the state
    counted in the training estimate. ``profile=True`` adds measured forward and backward times per
    layer from real passes (training mode, ``batch_size`` random images, median of
    ``profile_runs`` after one warm-up; the model's parameters, gradients, buffers and the random
    generator are restored afterwards). ``depth=d`` merges the layers of each module ``d`` levels
    below the model into one row whose activations are the module's output (``depth=1`` gives the
    per-block tables of reference_figures.md for GoogLeNet and ResNet); the default lists every layer.
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary(): model must be a cnnx.nn.Module, got {type(model).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"summary(): batch_size must be a positive int, got {batch_size!r}")
    if optimizer not in OPTIMIZER_SLOTS:
        raise ValueError(f"summary(): optimizer must be one of {sorted(OPTIMIZER_SLOTS)}, got {optimizer!r}")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1):
        raise ValueError(f"summary(): depth must be None or a positive int, got {depth!r}")
    batch_size = int(batch_size)
    sizes = _input_sizes(input_size)
    dtype = _model_dtype(model, dtype)
    tracer = trace(model, sizes, dtype, batch_size)

    input_rows = []
    for i, s in enumerate(sizes):
        n = math.prod(s)
        input_rows.append(Row(name="input" if len(sizes) == 1 else f"input.{i}", type="Input", input_shape=None,
                              output_shape=(batch_size, *s), output_elements=n, activations=n,
                              activation_bytes=n * dtype.itemsize * batch_size))
    rows = input_rows + tracer.rows

    params = {id(p): p for p in model.parameters()}
    trainable = sum(p._data.size for p in params.values() if p.requires_grad)
    total = sum(p._data.size for p in params.values())
    in_rows = sum(r.params for r in rows)
    result = Summary(
        model=type(model).__name__, input_size=sizes, batch_size=batch_size, dtype=str(dtype), rows=rows,
        total_params=total, trainable_params=trainable, non_trainable_params=total - trainable,
        untraced_params=total - in_rows,
        total_macs=sum(r.macs for r in rows), total_activations=sum(r.activations for r in rows),
        param_bytes=sum(p._data.nbytes for p in params.values()),
        trainable_param_bytes=sum(p._data.nbytes for p in params.values() if p.requires_grad),
        buffer_bytes=sum(b._data.nbytes for b in {id(b): b for b in model.buffers()}.values()),
        activation_bytes=sum(r.activation_bytes for r in rows), itemsize=dtype.itemsize, optimizer=optimizer)
    if profile:
        from ._profile import profile_model
        result.profile = profile_model(model, result, sizes, dtype, runs=profile_runs)
    if depth is not None:
        result.rows = input_rows + group_rows(tracer.rows, tracer.blocks, int(depth), batch_size, dtype.itemsize)
        result.total_activations = sum(r.activations for r in result.rows)
        result.activation_bytes = sum(r.activation_bytes for r in result.rows)
        result.depth = int(depth)
    return result

"""``Module``: the base of every layer and model, with PyTorch's registration and state-dict rules.

Assigning a ``Parameter``, a ``Module`` or (via ``register_buffer``) a buffer Tensor as an attribute
registers it under that name in ``_parameters`` / ``_modules`` / ``_buffers``, in assignment order;
``state_dict()`` keys are the dotted paths (``features.0.weight``). Registered objects are also kept
in the instance ``__dict__``, so ``self.weight`` in ``forward`` is a plain attribute read rather than
PyTorch's ``__getattr__`` fallback (a measurable share of per-layer overhead in small models).
"""
from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping
from typing import Callable, Iterator

import numpy as np

from ..tensor import Tensor
from .parameter import Parameter

__all__ = ["Module"]

_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class _RemovableHandle:
    """Returned by ``register_forward_hook``; ``remove()`` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: dict):
        self._hooks = hooks
        self.id = _RemovableHandle._next_id
        _RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _as_array(key: str, value) -> np.ndarray:
    """A state-dict value (cnnx Tensor, numpy array, number, or anything with ``__array__`` such as a
    PyTorch tensor) as a numpy array, without copying when possible."""
    if isinstance(value, Tensor):
        return value._data
    if hasattr(value, "detach") and hasattr(value, "cpu") and not isinstance(value, np.ndarray):
        value = value.detach().cpu()  # a PyTorch tensor
    try:
        array = np.asarray(value)
    except Exception as e:  # noqa: BLE001 - reported with the key
        raise TypeError(f"state_dict value for {key!r} is not array-like ({type(value).__name__}): {e}") from None
    if array.dtype.kind not in "biuf":  # strings, objects, complex numbers, dates: no silent conversion
        raise TypeError(f"state_dict value for {key!r} is not numeric: {type(value).__name__} of dtype {array.dtype} "
                        "(expected an array of real numbers)")
    return array


class StateDictError(RuntimeError, ValueError):
    """A state dict that does not fit the module (missing, unexpected or wrong-shaped entries): a
    RuntimeError as in PyTorch, and a ValueError as cnnx's contract for bad arguments asks."""


def _cast_problem(key: str, src: np.ndarray, target: np.ndarray) -> str | None:
    """Why copying ``src`` into the integer ``target`` would change its values (None when it would not)."""
    if target.dtype.kind not in "iu" or src.dtype.kind != "f" or src.size == 0:
        return None
    bad = ~np.isfinite(src) | (src != np.round(src))
    if bad.any():
        return (f"value for {key} holds {float(src[bad].flat[0])}, which the integer ({target.dtype}) entry cannot hold "
                "without changing it")
    return None


class Module:
    """Base class of layers and models: subclass it, assign layers and Parameters in ``__init__``
    (after ``super().__init__()``), and define ``forward``. Call the module, not ``forward``."""

    training: bool

    def __init__(self) -> None:
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_non_persistent_buffers"] = set()
        d["_modules"] = {}
        d["_forward_hooks"] = {}
        d["_forward_pre_hooks"] = {}

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        if self._forward_pre_hooks or self._forward_hooks:
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    def _call_with_hooks(self, args, kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_hook(self, hook: Callable) -> _RemovableHandle:
        """Call ``hook(module, args, output)`` after every forward (a non-None return replaces the
        output). Returns a handle whose ``remove()`` unregisters it."""
        handle = _RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook: Callable) -> _RemovableHandle:
        """Call ``hook(module, args)`` before every forward (a non-None return replaces the args)."""
        handle = _RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    # ---- registration ---------------------------------------------------------------------
    def _registry(self, kind: str) -> dict:
        reg = self.__dict__.get(kind)
        if reg is None:
            raise AttributeError(f"cannot assign {kind[1:]} before Module.__init__() call "
                                 f"(call super().__init__() first in {type(self).__name__}.__init__)")
        return reg

    def _forget(self, name: str) -> None:
        for kind in ("_parameters", "_buffers", "_modules"):
            self.__dict__.get(kind, {}).pop(name, None)
        self.__dict__.get("_non_persistent_buffers", set()).discard(name)

    def _check_name(self, kind: str, registry: str, name) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f'{kind} name can\'t be empty or contain ".", got {name!r}')
        if name not in self.__dict__[registry] and (name in self.__dict__ or hasattr(type(self), name)):
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (a Parameter, or None for an absent optional weight) as ``name``."""
        params = self._registry("_parameters")
        self._check_name("parameter", "_parameters", name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(cnnx.nn.Parameter or None required)")
        self._forget(name)
        params[name] = param
        self.__dict__[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register a Tensor that is state but not a parameter (running statistics). Persistent
        buffers are part of ``state_dict()``."""
        buffers = self._registry("_buffers")
        self._check_name("buffer", "_buffers", name)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(cnnx.Tensor or None required)")
        self._forget(name)
        buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)
        self.__dict__[name] = tensor

    def add_module(self, name: str, module: Module | None) -> None:
        """Register a child module as ``name``."""
        modules = self._registry("_modules")
        self._check_name("module", "_modules", name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._forget(name)
        modules[name] = module
        self.__dict__[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        if isinstance(value, (Parameter, Module)):
            if "_parameters" in d:  # whatever the name held before (attribute, buffer, ...) is replaced
                self._forget(name)
                d.pop(name, None)
            if isinstance(value, Parameter):
                self.register_parameter(name, value)
            else:
                self.add_module(name, value)
        elif name in d.get("_parameters", ()):
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(cnnx.nn.Parameter or None expected)")
            self.register_parameter(name, None)
        elif name in d.get("_modules", ()):
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(cnnx.nn.Module or None expected)")
            self._modules[name] = None
            d[name] = None
        elif name in d.get("_buffers", ()):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(cnnx.Tensor or None expected)")
            self._buffers[name] = value
            d[name] = value
        else:
            object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._forget(name)
        object.__delattr__(self, name)

    def __getattr__(self, name: str):
        # Only reached when `name` is not in __dict__: entries put into the registries directly.
        d = self.__dict__
        for kind in ("_parameters", "_buffers", "_modules"):
            reg = d.get(kind)
            if reg is not None and name in reg:
                return reg[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    # ---- traversal ------------------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True):
        """(dotted name, module) for this module and every descendant, depth first, parents before
        children (iterative: no generator per level, and no recursion limit)."""
        seen = set() if memo is None else memo
        out, stack = [], [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in seen:
                    continue
                seen.add(id(module))
            out.append((name, module))
            children = module._modules
            if children:
                stack.extend(reversed([(f"{name}.{k}" if name else k, c) for k, c in children.items()
                                       if c is not None]))
        return iter(out)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, kind: str, prefix: str, recurse: bool, remove_duplicate: bool = True):
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mod_prefix, module in modules:
            for name, value in getattr(module, kind).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """(dotted name, Parameter) pairs; a parameter shared by two layers is listed once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def _unique_modules(self) -> list:
        """This module and its descendants, each once, parents first (no names: the fast path of
        ``parameters()`` and ``zero_grad()``, which run every training step)."""
        seen, out, stack = set(), [], [self]
        while stack:
            m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            out.append(m)
            if m._modules:
                stack.extend(reversed([c for c in m._modules.values() if c is not None]))
        return out

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every Parameter once, in ``named_parameters()`` order."""
        seen = set()
        for m in self._unique_modules() if recurse else (self,):
            for p in m._parameters.values():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        """The descendant at dotted path ``target`` ("" is this module)."""
        module = self
        for part in target.split(".") if target else []:
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r} (in {target!r})")
            module = child
        return module

    # ---- modes and bulk operations ---------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout active, batch norm on batch statistics) here and below."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self) -> Module:
        """Set evaluation mode; same as ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters (to None by default, as in PyTorch 2)."""
        for m in self._unique_modules():
            for p in m._parameters.values():
                if p is not None and p._grad is not None:
                    if set_to_none:
                        p._grad = None
                    else:
                        p._grad._data[...] = 0

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn`` on every descendant, then on this module (e.g. custom initialisation)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def _apply_to_arrays(self, convert: Callable[[np.ndarray], np.ndarray]) -> Module:
        """Replace every parameter's, gradient's and buffer's data by ``convert(data)``, keeping the
        Parameter objects (optimizers hold references to them)."""
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    p._data = convert(p._data)
                    if p._grad is not None:
                        p._grad._data = convert(p._grad._data)
            for b in m._buffers.values():
                if b is not None:
                    b._data = convert(b._data)
        return self

    def to(self, *args, dtype=None, device=None) -> Module:
        """Convert floating point parameters and buffers to ``dtype`` (and check ``device``)."""
        from .. import _storage

        for a in args:
            if isinstance(a, (str, _storage.device)):
                device = a
            else:
                dtype = a
        if device is not None:
            _storage.resolve_device(device)
        if dtype is None:
            return self
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"Module.to() only accepts floating point dtypes, got {dtype}")
        return self._apply_to_arrays(lambda a: a.astype(dtype) if a.dtype.kind == "f" and a.dtype != dtype else a)

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    def cpu(self) -> Module:
        return self

    # ---- state dict -----------------------------------------------------------------------
    def state_dict(self, *, prefix: str = "", keep_vars: bool = False) -> dict:
        """Every parameter and persistent buffer by dotted name: a module's own entries first, then its
        children's (a module registered under two names appears under both, as in PyTorch). Values
        share memory with the module (detached unless ``keep_vars``)."""
        out = {}
        self._save_state(out, prefix, keep_vars)
        return out

    def _save_state(self, out: dict, prefix: str, keep_vars: bool) -> None:
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, m in self._modules.items():
            if m is not None:
                m._save_state(out, f"{prefix}{name}.", keep_vars)

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy parameters and buffers from ``state_dict`` (values: cnnx Tensors, numpy arrays or
        anything array-like, e.g. PyTorch tensors), casting to each tensor's dtype.

        Everything is checked before anything is copied. A value whose shape differs from the
        module's is always an error, and so is a float value with a fractional part or NaN for an
        integer entry (``num_batches_tracked``); with ``strict`` (default), missing and unexpected keys
        are too. These errors are one ``StateDictError`` (a RuntimeError, as in PyTorch, and a
        ValueError) listing every offending key; a value that is not a real numeric array raises
        TypeError. Returns ``(missing_keys, unexpected_keys)``.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict(): state_dict must be a mapping of names to arrays, got "
                            f"{type(state_dict).__name__}")
        if not isinstance(strict, (bool, np.bool_)):
            raise TypeError(f"load_state_dict(): strict must be True or False, got {type(strict).__name__} {strict!r}")
        targets = self.state_dict(keep_vars=True)
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        errors, copies = [], []
        for key, target in targets.items():
            if key not in state_dict:
                continue
            src = _as_array(key, state_dict[key])
            if src.shape != target.shape:
                errors.append(f"size mismatch for {key}: copying a param with shape {tuple(src.shape)} from "
                              f"checkpoint, the shape in current model is {tuple(target.shape)}.")
            elif (problem := _cast_problem(key, src, target._data)) is not None:
                errors.append(problem)
            else:
                copies.append((target, src))
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        if errors:
            raise StateDictError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        for target, src in copies:
            np.copyto(target._data, src, casting="unsafe")
        return _IncompatibleKeys(missing, unexpected)

    # ---- printing -------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in ``repr`` (its hyper-parameters)."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = []
        for name, module in self._modules.items():
            text = repr(module).replace("\n", "\n  ")
            child_lines.append(f"({name}): {text}")
        lines = extra_lines + child_lines
        if not lines:
            return f"{self._get_name()}()"
        if len(extra_lines) == 1 and not child_lines:
            return f"{self._get_name()}({extra_lines[0]})"
        return f"{self._get_name()}(\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))


"""``cnnx summary MODEL``: ``cnnx.summary`` and the seed's analyses (``cnnx.analysis``) from the shell.

MODEL is a zoo name (``cnnx.models.list_models()``) or ``package.module:name`` for your own
``Module`` class or factory (with ``--input``). Examples::

    cnnx summary vgg16
    cnnx summary mobilenet_v1 --width 0.5 --input 3,160,160
    cnnx summary alexnet -k variant=torchvision --markdown
    cnnx summary alexnet --seed-table      # the seed's AlexNet table, recomputed (Norm2 typo flagged)
    cnnx summary vgg16 --seed-table        # the seed's VGG16 table and the 3x3-stack vs 5x5 argument
    cnnx summary mobilenet_v1 --seed-table # 1/Dk^2 + 1/Co next to each block's measured MAC ratio
    cnnx summary resnet18 --profile        # measured forward/backward ms per layer
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import json
import sys

from .summary import OPTIMIZER_SLOTS

# Zoo models whose seed analyses --seed-table prints.
SEED_TABLES = {"alexnet": "the seed's AlexNet table", "vgg": "the seed's VGG16 table and the 3x3-stack argument",
               "mobilenet_v1": "depthwise-separable ratios per block"}


EXAMPLES = """examples:
  cnnx summary vgg16
  cnnx summary mobilenet_v1 --width 0.5 --input 3,160,160
  cnnx summary alexnet -k variant=torchvision --batch 32 --optimizer adam --markdown
  cnnx summary alexnet --seed-table     the seed's AlexNet table, recomputed (Norm2 typo flagged)
  cnnx summary resnet18 --profile       measured forward/backward ms per layer
  cnnx summary mypackage.nets:MyNet --input 3,32,32

MACs count convolution and FC multiply-accumulates per image; FLOPs = 2 x MACs. Conventions: docs/summary.md."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Per-layer shapes, parameters, MACs, activations and memory of a model, traced without "
                     "running its convolutions (milliseconds for any zoo model).")
    p.epilog = EXAMPLES
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("model", help="zoo model name (see cnnx.models.list_models()) or package.module:name of your "
                                 "own Module class or factory")
    p.add_argument("--input", metavar="C,H,W", help="input size without the batch (default: the model's "
                                                    "standard input, e.g. 3,224,224; 1,32,32 for lenet5)")
    p.add_argument("--width", type=float, metavar="X", help="width multiplier (mobilenet_v1's width_mult)")
    p.add_argument("--batch", type=int, default=1, metavar="N", help="batch size for memory and --profile "
                                                                     "(MACs and activations are per image)")
    p.add_argument("--classes", type=int, metavar="N", help="num_classes of the model")
    p.add_argument("-k", "--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="another constructor keyword, e.g. variant=torchvision, groups=2, aux_logits=False "
                        "(repeatable)")
    p.add_argument("--depth", type=int, metavar="D", help="one row per module D levels deep, its output counted "
                   "as one activation tensor (1: reference_figures.md's per-block GoogLeNet/ResNet tables)")
    p.add_argument("--all", action="store_true", help="also list pass-through layers (ReLU, Dropout, Flatten, ...)")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZER_SLOTS), default="momentum",
                   help="optimizer state counted in the training-memory estimate (default: momentum)")
    p.add_argument("--profile", action="store_true", help="add measured forward and backward time per layer "
                                                          "(real passes in training mode)")
    p.add_argument("--runs", type=int, default=3, metavar="N", help="timed runs for --profile (median; default 3)")
    p.add_argument("--seed-table", action="store_true",
                   help="also print the seed's analysis for this model: " + "; ".join(
                       f"{k}: {v}" for k, v in SEED_TABLES.items()))
    out = p.add_mutually_exclusive_group()
    out.add_argument("--markdown", action="store_true", help="print Markdown tables")
    out.add_argument("--json", action="store_true", help="print every row and total as JSON")


class _Usage(Exception):
    pass


def _parse_input(text: str) -> tuple:
    try:
        size = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise _Usage(f"--input must look like C,H,W (e.g. 3,224,224), got {text!r}") from None
    if len(size) < 1 or any(v < 1 for v in size):
        raise _Usage(f"--input must be positive integers like 3,224,224, got {text!r}")
    return size


def _model_kwargs(args) -> dict:
    kwargs = {}
    for item in args.model_arg:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise _Usage(f"--model-arg must look like KEY=VALUE, got {item!r}")
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value  # a bare word: variant=torchvision
    if args.width is not None:
        kwargs["width_mult"] = args.width
    if args.classes is not None:
        kwargs["num_classes"] = args.classes
    return kwargs


def _build(args, kwargs):
    """(model, zoo name or None, default input size or None)."""
    from . import models, nn

    # Weights matter only for --profile; a structure-only build skips seconds of random init.
    init = contextlib.nullcontext if args.profile else nn.init.no_init
    if ":" in args.model:
        module_name, _, attr = args.model.partition(":")
        try:
            target = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise _Usage(f"cannot load {args.model!r}: {e}") from None
        with init():
            model = target if isinstance(target, nn.Module) else target(**kwargs)
        if not isinstance(model, nn.Module):
            raise _Usage(f"{args.model} gave a {type(model).__name__}, not a cnnx.nn.Module")
        return model, None, None
    name = args.model.lower()
    if name not in models.list_models():
        raise _Usage(f"unknown model {args.model!r}; known: {', '.join(models.list_models())}, "
                     "or package.module:name for your own")
    try:
        with init():
            model = models.get_model(name, **kwargs)
    except TypeError as e:
        raise _Usage(f"{name} does not take these options ({', '.join(kwargs)}): {e}") from None
    except ValueError as e:
        raise _Usage(str(e)) from None
    size = models.INPUT_SIZES[name]
    if name == "alexnet" and getattr(model, "variant", None) == "torchvision":
        size = (3, 224, 224)  # torchvision's AlexNet pads conv1 and is documented at 224
    return model, name, size


def _seed_tables(name, model, s):
    from . import analysis

    if name == "alexnet":
        return [analysis.alexnet_seed_table()]
    if name is not None and name.startswith("vgg"):
        return [analysis.vgg16_seed_table(), analysis.receptive_field_comparison()]
    if name == "mobilenet_v1":
        return [analysis.depthwise_separable_table(model, s.input_size[0], source=s)]
    return None


def main(args: argparse.Namespace) -> int:
    from .summary import summary

    try:
        if args.batch < 1:
            raise _Usage(f"--batch must be >= 1, got {args.batch}")
        if args.runs < 1:
            raise _Usage(f"--runs must be >= 1, got {args.runs}")
        kwargs = _model_kwargs(args)
        model, name, default_size = _build(args, kwargs)
        if args.input is not None:
            size = _parse_input(args.input)
        elif default_size is not None:
            size = default_size
        else:
            raise _Usage(f"--input C,H,W is needed for {args.model}")
        if args.depth is not None and args.depth < 1:
            raise _Usage(f"--depth must be >= 1, got {args.depth}")
        try:
            s = summary(model, size, args.batch, optimizer=args.optimizer, profile=args.profile,
                        profile_runs=args.runs, depth=args.depth)
        except ValueError as e:
            raise _Usage(f"{args.model} does not run on input {','.join(map(str, size))}: {e}") from None
    except _Usage as e:
        print(f"cnnx summary: error: {e}", file=sys.stderr)
        return 2
    tables = _seed_tables(name, model, s) if args.seed_table else None
    if args.json:
        d = s.to_dict()
        if tables is not None:
            d["seed_tables"] = [t.to_dict() for t in tables]
        print(json.dumps(d, indent=1))
        return 0
    parts = [s.to_markdown(args.all) if args.markdown else s.to_string(args.all)]
    if args.seed_table:
        if tables is None:
            parts.append(f"(no seed table for {args.model}: the seed analyses "
                         f"{', '.join(SEED_TABLES)} models)")
        else:
            parts += [t.to_markdown() if args.markdown else str(t) for t in tables]
    print("\n\n".join(parts))
    return 0

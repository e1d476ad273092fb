"""``cnnx train MODEL`` and ``cnnx eval MODEL CHECKPOINT``: the seed's networks on real data, one command.

Data sources (``--data``): ``digits`` (bundled, offline; the held-out 20% is the test set),
``mnist:DIR`` (IDX files), ``cifar10:DIR`` (python batches) and ``folder:DIR`` (``DIR/train`` and
``DIR/test`` or ``DIR/val`` class folders, or one set of class folders split 80/20). Images are fitted
to the model: 32 x 32 for LeNet-5 and for models with a small-input variant (chosen automatically),
the model's standard size otherwise; grey images are repeated to three channels for colour
networks and colour images turned grey for LeNet-5. Per-model defaults (``MODEL_DEFAULTS``) are the
settings that reach the accuracies in docs/training.md on the digits.
"""
from __future__ import annotations

import argparse
import copy
import inspect
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

DATASETS = ("digits", "mnist:DIR", "cifar10:DIR", "folder:DIR")

# epochs, batch size, optimizer and learning rate per model (others: FALLBACK_DEFAULTS).
MODEL_DEFAULTS = {
    "lenet5": dict(epochs=50, batch_size=32, optimizer="sgd", lr=0.05),
    "resnet18": dict(epochs=8, batch_size=64, optimizer="sgd", lr=0.05),
    "mobilenet_v1": dict(epochs=8, batch_size=64, optimizer="sgd", lr=0.05),
}
FALLBACK_DEFAULTS = dict(epochs=10, batch_size=64, optimizer="sgd", lr=0.01)
WEIGHT_DECAY = 5e-4
MOMENTUM = 0.9
SMALL_INPUT_MAX = 64  # images up to this size use a model's small-input variant

MNIST_STATS = ((0.1307,), (0.3081,))
CIFAR_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


class CliError(Exception):
    """A user error: printed as ``cnnx: error: ...`` with exit status 2."""


def _models():
    from . import models

    return models


def _check_model(name: str) -> str:
    known = _models().list_models()
    if name.lower() not in known:
        raise CliError(f"unknown model {name!r}; valid models: {', '.join(known)}")
    return name.lower()


def _parse_data(spec: str) -> tuple[str, Path | None]:
    kind, _, where = spec.partition(":")
    kind = kind.lower()
    if kind == "digits" and not where:
        return kind, None
    if kind in ("mnist", "cifar10", "folder") and where:
        return kind, Path(where).expanduser()
    if kind in ("mnist", "cifar10", "folder"):
        raise CliError(f"--data {kind} needs a folder: --data {kind}:DIR")
    raise CliError(f"unknown dataset {spec!r}; valid datasets: {', '.join(DATASETS)}")


def _model_geometry(name: str, image_size: int | None) -> tuple[int, int, dict]:
    """(channels, image size, extra constructor kwargs) for model ``name``."""
    models = _models()
    channels, height, _ = models.INPUT_SIZES[name]
    ctor = getattr(models, name)
    takes_small = "small_input" in inspect.signature(ctor).parameters
    if name == "lenet5":
        return channels, 32, {}
    size = image_size if image_size is not None else (32 if takes_small else height)
    kwargs = {"small_input": True} if takes_small and size <= SMALL_INPUT_MAX else {}
    return channels, size, kwargs


def _build_data(kind: str, root: Path | None, channels: int, size: int, augment: bool, val_fraction: float,
                split_seed: int):
    """(train dataset, validation dataset or None, test dataset, number of classes)."""
    from .data import Subset, datasets, transforms as T

    if kind == "digits":
        aug = T.Compose([T.RandomCrop(size, padding=max(1, size // 16)),
                         T.RandomRotation(10, interpolation="bilinear")]) if augment else None
        train, test = (datasets.Digits(True, size=size, transform=aug, channels=channels),
                       datasets.Digits(False, size=size, channels=channels))
        n_classes = 10
        if val_fraction:
            plain = _with_transform(train, None)
            return _split(train, plain, val_fraction, split_seed, Subset) + (test, n_classes)
        return train, None, test, n_classes
    if root is not None and not root.is_dir():
        raise CliError(f"--data {kind}: folder {root} does not exist")
    fit = []
    native = {"mnist": 28, "cifar10": 32}.get(kind)
    if kind == "mnist" and size == 32:
        fit.append(T.Pad(2))  # LeNet-5's classic framing of MNIST
    elif native != size:
        fit += [T.Resize(size), T.CenterCrop(size)]
    native_channels = {"mnist": 1, "cifar10": 3, "folder": 3}[kind]
    if native_channels != channels:
        fit.append(T.Grayscale(channels))
    if kind == "mnist":
        mean, std = MNIST_STATS
    elif kind == "cifar10":
        mean, std = CIFAR_STATS
    else:
        mean, std = (0.5,) * 3, (0.25,) * 3
    if channels != len(mean):
        mean, std = (float(np.mean(mean)),) * channels, (float(np.mean(std)),) * channels
    tail = [T.ToTensor(), T.Normalize(mean, std)]
    augs = []
    if augment:
        augs = [T.RandomCrop(size, padding=size // 8)]
        if kind != "mnist":
            augs.append(T.RandomHorizontalFlip())
    plain_tf = T.Compose(fit + tail)
    train_tf = T.Compose(fit + tail + augs)
    if kind in ("mnist", "cifar10"):
        cls = datasets.MNIST if kind == "mnist" else datasets.CIFAR10
        train, test = cls(root, True, train_tf), cls(root, False, plain_tf)
        plain = _with_transform(train, plain_tf)
        n_classes = 10
    else:
        test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
        if (root / "train").is_dir() and test_dir is not None:
            train = datasets.ImageFolder(root / "train", train_tf)
            plain = _with_transform(train, plain_tf)
            test = datasets.ImageFolder(test_dir, plain_tf)
            if test.classes != train.classes:
                raise CliError(f"--data folder: {root / 'train'} and {test_dir} have different classes")
        else:
            train = datasets.ImageFolder(root, train_tf)
            plain = _with_transform(train, plain_tf)
            idx_train, idx_test = _stratified(train.targets, 0.2, split_seed)
            train, test = Subset(train, idx_train), Subset(plain, idx_test)
            plain = Subset(plain, idx_train)
        n_classes = len((train.dataset if isinstance(train, Subset) else train).classes)
    if val_fraction:
        return _split(train, plain, val_fraction, split_seed, Subset) + (test, n_classes)
    return train, None, test, n_classes


def _with_transform(dataset, transform):
    """The same samples (arrays shared, not reloaded) with another transform."""
    other = copy.copy(dataset)
    other.transform = transform
    return other


def _stratified(targets: np.ndarray, fraction: float, seed: int):
    from .data.datasets.digits import split_indices

    return split_indices(np.asarray(targets), fraction, seed)


def _split(train, plain, fraction: float, seed: int, Subset):
    """Hold out ``fraction`` of the training set (without augmentation) for validation."""
    n = len(train)
    perm = np.random.default_rng(seed).permutation(n)
    k = max(1, int(round(fraction * n)))
    return Subset(train, np.sort(perm[k:])), Subset(plain, np.sort(perm[:k]))


def _optimizer(name: str, params, lr: float):
    from . import optim

    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=True)
    return optim.AdamW(params, lr=lr, weight_decay=WEIGHT_DECAY * 10)


def _scheduler(name: str, optimizer, epochs: int):
    from .optim import lr_scheduler

    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if name == "step":
        return lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    if name == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=2)
    return None


def _check_common(args) -> None:
    """The options ``train`` and ``eval`` share, checked before any work."""
    if args.image_size is not None and args.image_size < 1:
        raise CliError(f"--image-size must be >= 1, got {args.image_size}")
    if args.threads is not None and args.threads < 1:
        raise CliError(f"--threads must be >= 1, got {args.threads}")


def _settings(args) -> dict:
    model = _check_model(args.model)
    kind, root = _parse_data(args.data)
    defaults = MODEL_DEFAULTS.get(model, FALLBACK_DEFAULTS)
    s = {
        "model": model, "data": args.data, "kind": kind, "root": None if root is None else str(root),
        "epochs": defaults["epochs"] if args.epochs is None else args.epochs,
        "batch_size": defaults["batch_size"] if args.batch_size is None else args.batch_size,
        "optimizer": defaults["optimizer"] if args.optimizer is None else args.optimizer,
        "lr": defaults["lr"] if args.lr is None else args.lr,
        "schedule": args.schedule, "seed": args.seed, "val_fraction": args.val_fraction,
        "augment": not args.no_augment, "image_size": args.image_size,
    }
    if args.optimizer == "adam" and args.lr is None:
        s["lr"] = 1e-3
    for key in ("epochs", "batch_size"):
        if s[key] < (0 if key == "epochs" else 1):
            raise CliError(f"--{key.replace('_', '-')} must be >= {0 if key == 'epochs' else 1}, got {s[key]}")
    _check_common(args)
    if args.save_every < 1:
        raise CliError(f"--save-every must be >= 1, got {args.save_every}")
    if args.seed < 0:
        raise CliError(f"--seed must be >= 0, got {args.seed}")
    if not 0 < s["lr"] < math.inf:
        raise CliError(f"--lr must be a finite number > 0, got {s['lr']}")
    if not 0 <= s["val_fraction"] < 1:
        raise CliError(f"--val-fraction must be in [0, 1), got {s['val_fraction']}")
    return s


def _prepare(s: dict):
    """Seeded model, loaders, optimizer and scheduler for settings ``s``."""
    import cnnx
    from .data import DataLoader

    cnnx.manual_seed(s["seed"])
    channels, size, kwargs = _model_geometry(s["model"], s["image_size"])
    root = None if s["root"] is None else Path(s["root"])
    train, val, test, n_classes = _build_data(s["kind"], root, channels, size, s["augment"], s["val_fraction"],
                                              split_seed=0)
    model = _models().get_model(s["model"], num_classes=n_classes, **kwargs)
    loaders = {
        "train": DataLoader(train, batch_size=s["batch_size"], shuffle=True, seed=s["seed"]),
        "val": None if val is None else DataLoader(val, batch_size=max(s["batch_size"], 256)),
        "test": DataLoader(test, batch_size=max(s["batch_size"], 256)),
    }
    optimizer = _optimizer(s["optimizer"], model.parameters(), s["lr"])
    scheduler = _scheduler(s["schedule"], optimizer, s["epochs"])
    return model, loaders, optimizer, scheduler, (channels, size, kwargs)


def cmd_train(args: argparse.Namespace) -> int:
    import cnnx
    from . import train as T

    s = _settings(args)
    if args.threads is not None:
        cnnx.set_num_threads(args.threads)
    out = None if args.out is None else Path(args.out)
    if args.resume is not None:
        from .io import load

        state_file = Path(args.resume)
        if not state_file.is_file():
            raise CliError(f"--resume: {state_file} does not exist")
        saved = load(state_file).get("extra", {}).get("settings", {})
        for key in ("model", "data", "batch_size", "optimizer", "seed", "val_fraction", "augment", "image_size"):
            if key in saved and saved[key] != s[key]:
                raise CliError(f"--resume: {state_file} was trained with {key}={saved[key]!r}, this run has "
                               f"{key}={s[key]!r}")
    model, loaders, optimizer, scheduler, (channels, size, kwargs) = _prepare(s)
    n_params = sum(p.numel() for p in model.parameters())
    variant = " (small-input variant)" if kwargs.get("small_input") else ""
    print(f"model {s['model']}{variant}: {n_params:,} parameters; input {channels} x {size} x {size}", flush=True)
    print(f"data {s['data']}: {len(loaders['train'].dataset)} training, "
          f"{0 if loaders['val'] is None else len(loaders['val'].dataset)} validation, "
          f"{len(loaders['test'].dataset)} test images", flush=True)
    print(f"{s['optimizer']} lr {s['lr']:g}, batch {s['batch_size']}, {s['epochs']} epochs, schedule {s['schedule']}, "
          f"seed {s['seed']}, {cnnx.get_num_threads()} threads", flush=True)
    callbacks = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        callbacks.append(T.Checkpoint(out / "last.ckpt", every=args.save_every, extra={"settings": s}))
    t0 = time.perf_counter()
    history = T.fit(model, loaders["train"], loaders["val"], optimizer=optimizer, epochs=s["epochs"],
                    scheduler=scheduler, callbacks=callbacks, resume=args.resume, verbose=0 if args.quiet else 1)
    train_s = time.perf_counter() - t0
    result = T.evaluate(model, loaders["test"])
    if out is not None:
        from .io import save

        save(model.state_dict(), out / "model.safetensors")
        (out / "history.json").write_text(json.dumps({"settings": s, "history": history.state_dict(),
                                                      "test": result}, indent=1))
        try:
            history.plot(out / "curves.png")
            curves = ", curves.png"
        except ImportError:
            curves = " (pip install matplotlib for curves.png)"
        print(f"saved {out}/: last.ckpt (resume with --resume), model.safetensors, history.json{curves}")
    print(f"training time: {train_s:.1f} s; test loss {result['loss']:.4f}, top-5 {100 * result['acc5']:.2f}%")
    print(f"test accuracy: {100 * result['acc1']:.2f}%", flush=True)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import cnnx
    from . import train as T
    from .io import load

    model_name = _check_model(args.model)
    kind, root = _parse_data(args.data)
    _check_common(args)
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.threads is not None:
        cnnx.set_num_threads(args.threads)
    path = Path(args.checkpoint)
    if not path.is_file():
        raise CliError(f"checkpoint {path} does not exist")
    state = load(path)
    if isinstance(state, dict) and state.get("format") == "cnnx.training_state":
        settings = state.get("extra", {}).get("settings", {})
        weights = state["model"]
    else:
        settings, weights = {}, state
    channels, size, kwargs = _model_geometry(model_name, args.image_size or settings.get("image_size"))
    _, _, test, n_classes = _build_data(kind, root, channels, size, False, 0.0, split_seed=0)
    model = _models().get_model(model_name, num_classes=n_classes, **kwargs)
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError) as e:
        raise CliError(f"{path} does not fit {model_name} with {n_classes} classes: {e}") from None
    from .data import DataLoader

    result = T.evaluate(model, DataLoader(test, batch_size=args.batch_size))
    print(f"{model_name} on {args.data} test set ({result['n']} images): loss {result['loss']:.4f}, "
          f"top-5 {100 * result['acc5']:.2f}%")
    print(f"test accuracy: {100 * result['acc1']:.2f}%")
    return 0


def add_parsers(sub) -> None:
    """Register ``train`` and ``eval`` on the ``cnnx`` command's sub-parsers."""
    train = sub.add_parser("train", help="train a model (default: on the bundled handwritten digits)",
                           description="Train MODEL and report its accuracy on the test set; ends with a line "
                                       "'test accuracy: NN.NN%%'.")
    train.add_argument("model", help="model name (lenet5, alexnet, vgg16, googlenet, resnet18, mobilenet_v1, ...)")
    train.add_argument("--data", default="digits", help=f"dataset: {' | '.join(DATASETS)} (default: digits)")
    train.add_argument("--epochs", type=int, help="epochs (default: per model)")
    train.add_argument("--batch-size", type=int, help="batch size (default: per model)")
    train.add_argument("--lr", type=float, help="learning rate (default: per model; 1e-3 for adam)")
    train.add_argument("--optimizer", choices=("sgd", "adam"), help="sgd (Nesterov momentum 0.9) or adam "
                                                                    "(AdamW); default sgd")
    train.add_argument("--schedule", choices=("cosine", "step", "plateau", "none"), default="cosine",
                       help="learning-rate schedule (default cosine; plateau: divide by 10 when the "
                            "validation loss stops improving)")
    train.add_argument("--val-fraction", type=float, default=0.0,
                       help="hold out this fraction of the training set for validation (default 0)")
    train.add_argument("--no-augment", action="store_true", help="no random crops, flips or rotations")
    train.add_argument("--image-size", type=int, help="resize images to this size (default: 32 for models "
                                                      "with a small-input variant, else the model's own)")
    train.add_argument("--out", help="folder for last.ckpt, model.safetensors, history.json, curves.png")
    train.add_argument("--save-every", type=int, default=1, help="checkpoint every N epochs (default 1)")
    train.add_argument("--resume", metavar="CKPT", help="continue the run saved in CKPT (an --out's last.ckpt)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument("--threads", type=int, help="kernel threads (default: all cores)")
    train.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    train.set_defaults(func=_guard(cmd_train))

    ev = sub.add_parser("eval", help="evaluate a trained model's checkpoint on a test set")
    ev.add_argument("model", help="model name")
    ev.add_argument("checkpoint", help="a model.safetensors or last.ckpt written by 'cnnx train --out'")
    ev.add_argument("--data", default="digits", help=f"dataset: {' | '.join(DATASETS)} (default: digits)")
    ev.add_argument("--batch-size", type=int, default=256)
    ev.add_argument("--image-size", type=int)
    ev.add_argument("--threads", type=int)
    ev.set_defaults(func=_guard(cmd_eval))


def _guard(fn):
    def run(args):
        try:
            return fn(args)
        except CliError as e:
            print(f"cnnx {args.command}: error: {e}", file=sys.stderr)
            return 2
        except (FileNotFoundError, ValueError) as e:
            print(f"cnnx {args.command}: error: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return run

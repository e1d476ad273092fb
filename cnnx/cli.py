"""The ``cnnx`` command (also ``python -m cnnx``)."""
from __future__ import annotations

import argparse
import sys


def _cmd_info(args: argparse.Namespace) -> int:
    import cnnx

    cnnx.show_config(print=True)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    return bench.main(args)


def _cmd_summary(args: argparse.Namespace) -> int:
    from . import _summary_cli

    return _summary_cli.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnx", description="cnnx: a compact CNN library with a C++ core")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    info = sub.add_parser("info", help="show the build and runtime configuration")
    info.set_defaults(func=_cmd_info)

    summary_parser = sub.add_parser("summary", help="per-layer shapes, parameters, MACs, activations and memory "
                                                    "of a model (and the seed's tables: --seed-table)")
    from . import _summary_cli

    _summary_cli.add_arguments(summary_parser)
    summary_parser.set_defaults(func=_cmd_summary)

    from . import _cli_train

    _cli_train.add_parsers(sub)

    bench_parser = sub.add_parser("bench", help="benchmark kernels against numpy and PyTorch (when installed)")
    from . import bench

    bench.add_arguments(bench_parser)
    bench_parser.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

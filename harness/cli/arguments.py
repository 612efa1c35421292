"""Shared argument types and helpers of the verbs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from fractions import Fraction

from harness.method.config import COMPONENTS, CORRUPTIONS


def cli_number(text: str) -> int | float | Fraction | str:
    """A command-line number as what it is (3 -> int, 3.0 -> float, 1/3 -> Fraction), else the text.

    ``CellConfig`` then judges it, so ``--epochs 3.0`` gets the same message as ``epochs: 3.0`` in params.yaml.
    """
    for kind in (int, float, Fraction):
        try:
            return kind(text)
        except (ValueError, ZeroDivisionError):
            pass
    return text


def corruption_arguments(p: argparse.ArgumentParser, defaults) -> None:
    """--kind, --strength and --component, as `cell` and `corrupt` take them (CellConfig's defaults)."""
    # Not argparse choices: a bad value gets the same one-line message as in params.yaml.
    p.add_argument("--kind", default=defaults.corruption,
                   help=f"the damage: {', '.join(CORRUPTIONS)} (default: %(default)s, the paper's re-initialisation)")
    p.add_argument("--strength", type=cli_number, default=defaults.strength,
                   help="noise: the noise's std as a multiple of each tensor's std; bitflip: each bit's flip "
                        "probability in [0, 1]; the other kinds take none")
    p.add_argument("--component", default=defaults.component,
                   help=f"the part of each chosen layer: {', '.join(COMPONENTS)} (default: %(default)s)")


def add_records_verb(subparsers, name: str, own_arguments: Callable[[argparse.ArgumentParser], None],
                      run: Callable[[argparse.Namespace], int], **texts: str) -> None:
    """A verb that reads a profile's result records: --profile, --params, its own arguments, --data-dir."""
    p = subparsers.add_parser(name, **texts)
    p.add_argument("--profile", default=None, help="default: the 'profile:' key of --params")
    p.add_argument("--params", default="params.yaml")
    own_arguments(p)
    p.add_argument("--data-dir", default="data", help="the data the cells read (part of their identity)")
    p.set_defaults(func=run)

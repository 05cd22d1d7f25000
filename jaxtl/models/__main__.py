"""`python -m jaxtl.models --list`: print the registered architecture names."""

from __future__ import annotations

import argparse

from jaxtl.models import list_models


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jaxtl.models", description=__doc__)
    parser.add_argument("--list", action="store_true", help="print one architecture name per line")
    args = parser.parse_args(argv)
    if not args.list:
        parser.error("nothing to do; pass --list")
    print("\n".join(list_models()))


if __name__ == "__main__":
    main()

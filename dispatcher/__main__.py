"""``python -m dispatcher`` / ``crucible-dispatcher``: ``crucible serve`` with settings from the
environment (the container's entry point)."""

import sys

from dispatcher import cli


def main() -> int:
    return cli.main(["serve", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())

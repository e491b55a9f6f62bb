"""``python -m wrapper [options] -- CMD...`` (the zipapp has its own ``__main__``, see pack.py)."""

import sys

from wrapper import cli

if __name__ == "__main__":
    sys.exit(cli.main())

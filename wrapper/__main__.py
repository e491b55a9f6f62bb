"""``python -m wrapper [options] -- CMD...`` (the zipapp has its own ``__main__``, see pack.py)."""

from wrapper import cli

if __name__ == "__main__":
    cli.exit_now(cli.main())

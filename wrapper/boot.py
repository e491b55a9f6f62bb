"""Entry point of the wrapper bundle: ``python -I -S -c 'from wrapper import boot' N VAR=VALUE...
WRAPPER-ARGS...``, as ``crucible-launch`` (wrapper/launch.c) runs it.

The launcher took the N variables that steer the dynamic loader out of the environment so the
loader would not act on them; they go back here, before anything else, so the command the
wrapper starts sees the environment the container was given.
"""

import os
import sys
from typing import List

from wrapper import cli


def _restore(argv: List[str]) -> List[str]:
    count = int(argv[0])
    for entry in argv[1 : 1 + count]:
        name, _, value = entry.partition("=")
        os.environ[name] = value
    return argv[1 + count :]


cli.exit_now(cli.main(_restore(sys.argv[1:])))

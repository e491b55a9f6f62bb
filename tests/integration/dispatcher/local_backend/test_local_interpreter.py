"""The ``python`` a local evaluation runs: the dispatcher's interpreter, standard library only."""

import pathlib
import subprocess
import sys

from dispatcher.backends.local import interpreter

PROBE = (
    "import sys, importlib.util\n"
    "print(sys.version_info[:3] == tuple(int(p) for p in sys.argv[1].split('.')))\n"
    "print([p for p in sys.path if 'site-packages' in p])\n"
    "print(importlib.util.find_spec('redis') is None)\n"
)


def test_the_evaluations_python_is_this_interpreter_without_its_packages(tmp_path: pathlib.Path):
    assert interpreter.prepare(tmp_path) == tmp_path / "bin"
    version = ".".join(map(str, sys.version_info[:3]))
    for name in interpreter.NAMES:
        probe = subprocess.run(
            [str(tmp_path / "bin" / name), "-c", PROBE, version],
            capture_output=True,
            text=True,
            check=True,
        )
        same_version, site_packages, no_redis = probe.stdout.splitlines()
        assert same_version == "True"
        assert site_packages == "[]"
        assert no_redis == "True"  # the dispatcher's own packages stay out of user code


def test_preparing_again_keeps_a_working_python(tmp_path: pathlib.Path):
    """A kept work root: the links and the environment file are rewritten in place."""
    interpreter.prepare(tmp_path)
    interpreter.prepare(tmp_path)
    done = subprocess.run(
        [str(tmp_path / "bin" / "python"), "-c", "print(1)"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert done.stdout == "1\n"

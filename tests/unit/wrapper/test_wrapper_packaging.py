"""The wrapper travels as one file into images we do not control: stdlib only, Python 3.8."""

import ast
import pathlib
import shutil
import stat
import subprocess
import sys
import zipfile
from typing import Any

import pytest

import wire
import wrapper
from wire import channel
from wrapper import pack

WRAPPER_DIR = pathlib.Path(wrapper.__file__).parent
WIRE_DIR = pathlib.Path(wire.__file__).parent
MODULES = sorted(WRAPPER_DIR.glob("*.py"))
# What of wire travels in the zipapp (and so must obey the wrapper's rules).
WIRE_MODULES = [WIRE_DIR / name for name in pack.WIRE_MODULES]


def _imported_modules(path: pathlib.Path) -> set[str]:
    """The modules ``path`` imports, dotted: ``from wire import channel`` is wire.channel."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            assert node.module is not None
            if node.module in ("wire", "wrapper"):
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
    return names


def _packed(name: str) -> bool:
    top, _, rest = name.partition(".")
    if top == "wire":
        return f"{rest or '__init__'}.py" in pack.WIRE_MODULES
    return top == "wrapper" or top in sys.stdlib_module_names


PACKED = MODULES + WIRE_MODULES


@pytest.mark.parametrize("path", PACKED, ids=[f"{p.parent.name}/{p.name}" for p in PACKED])
def test_packed_modules_import_only_the_standard_library_and_each_other(
    path: pathlib.Path,
) -> None:
    foreign = {name for name in _imported_modules(path) if not _packed(name)}

    assert not foreign, f"{path.name} imports {sorted(foreign)}"


VERMIN = shutil.which("vermin", path=str(pathlib.Path(sys.executable).parent)) or shutil.which(
    "vermin"
)


@pytest.mark.skipif(VERMIN is None, reason="vermin is not installed (pip install crucible[dev])")
def test_wrapper_is_valid_python_3_8() -> None:
    assert VERMIN is not None
    done = subprocess.run(
        [
            VERMIN,
            "--target=3.8-",
            "--violations",
            "--no-tips",
            "--eval-annotations",
            str(WRAPPER_DIR),
            *map(str, WIRE_MODULES),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr


def test_zipapp_build_is_reproducible(tmp_path: pathlib.Path) -> None:
    first = pack.build(tmp_path / "one" / pack.FILE_NAME)
    second = pack.build(tmp_path / "two" / pack.FILE_NAME)

    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert stat.S_IMODE(first.stat().st_mode) == 0o755
    with zipfile.ZipFile(first) as archive:
        entries = archive.infolist()
    # Nothing from the checkout (mtimes, modes, umask) may leak into the bytes.
    stamps = {(entry.date_time, entry.external_attr >> 16) for entry in entries}
    assert stamps == {((1980, 1, 1, 0, 0, 0), 0o644)}
    names = [e.filename for e in entries]
    assert names[0] == "__main__.py"
    assert sorted(names[1:]) == sorted(
        [*(f"wrapper/{p.name}" for p in MODULES), *(f"wire/{n}" for n in pack.WIRE_MODULES)]
    )
    assert not list(tmp_path.rglob(".*.partial"))


def test_pack_command_writes_a_runnable_wrapper(tmp_path: pathlib.Path, make_peer: Any) -> None:
    out = tmp_path / "dist" / pack.FILE_NAME
    built = subprocess.run(
        [sys.executable, "-m", "wrapper.pack", str(out)], capture_output=True, timeout=60
    )
    assert built.returncode == 0, built.stderr
    peer = make_peer()

    run = subprocess.run(
        [str(out), "--channel", str(peer.path), "--", "sh", "-c", "exit 4"],
        timeout=60,
        check=False,
    )

    assert run.returncode == 4
    peer.join()
    assert peer.record(channel.EXIT)["exit_code"] == 4


def test_package_runs_with_python_m(make_peer: Any) -> None:
    peer = make_peer()

    done = subprocess.run(
        [sys.executable, "-m", "wrapper", "--channel", str(peer.path), "--", "sh", "-c", "exit 6"],
        timeout=60,
        check=False,
    )

    assert done.returncode == 6
    peer.join()
    assert peer.record(channel.EXIT)["exit_code"] == 6

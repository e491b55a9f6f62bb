"""Build the wrapper bundle: ``python -m wrapper.bundle --launcher CRUCIBLE-LAUNCH OUT``.

The bundle runs the wrapper in an executor image without Python, whatever its libc: it carries
this interpreter's binary, the shared libraries it and the wrapper's extension modules need, the
dynamic loader that resolved them, and a zip of only the modules the wrapper imports (byte-code,
the wrapper and ``wire`` included). ``crucible-launch`` (wrapper/launch.c, static) starts it as
``ld.so --inhibit-cache --library-path DIR/lib DIR/python -I -S -c 'from wrapper import boot'``.

How this interpreter finds its modules in the bundle (CPython's getpath, none of it read from
the environment under ``-I``): ``DIR/pyvenv.cfg``, with no ``home``, stops the search for one in
the parent directory (the executor image's); the landmarks ``lib/python3.X/os.py`` and
``lib/python3.X/lib-dynload`` make DIR the prefix and exec-prefix, so ``sys.path`` is
``DIR/lib/python3X.zip``, ``DIR/lib/python3.X`` and its ``lib-dynload``; nothing of the image.
Entries are written in a fixed order with fixed modes and hash-based byte-code, so the same
interpreter and sources give the same bytes (the image build's --timestamp sets the mtimes).
"""

import argparse
import modulefinder
import os
import pkgutil
import py_compile
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

# The wrapper's entry point, the module it imports lazily (wire.hardening's ctypes), and every
# codec: the interpreter loads the locale's codec at start, and the image picks the locale.
ROOTS = ("wrapper.boot", "wrapper.cli", "ctypes")
# Reached only from stdlib modules' ``if __name__ == "__main__"`` self-tests, never by the
# wrapper; leaving them out takes the bundle from 28 MB to about half.
NEVER_IMPORTED = (
    "bdb", "cmd", "code", "distutils", "doctest", "idlelib", "lib2to3", "pdb", "pydoc", "test",
    "tkinter", "turtle", "unittest",
    # hashlib falls back to the built-in digests without it, and it needs libcrypto (4.7 MB)
    "_hashlib",
)  # fmt: skip
_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
_PT_INTERP = 3
_LIST_LINE = re.compile(r"^\s*(\S+) => (\S+) \(0x[0-9a-f]+\)$")


def build(out_path: str, launcher: str) -> Path:
    """Write the bundle to ``out_path`` (replacing it) and return its path."""
    out = Path(out_path)
    partial = out.with_name("." + out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    python = Path(os.path.realpath(sys.executable))
    loader = Path(os.path.realpath(interpreter_of(python)))
    major, minor = sys.version_info[:2]
    version = f"{major}.{minor}"
    stdlib = partial / "lib" / ("python" + version)
    dynload = stdlib / "lib-dynload"
    dynload.mkdir(parents=True)
    sources, extensions = find_modules()
    write_zip(partial / "lib" / f"python{major}{minor}.zip", sources)
    # The landmark only: os is frozen into the interpreter (and in the zip besides).
    _write(stdlib / "os.py", b"# landmark of the wrapper bundle's prefix (wrapper/bundle.py)\n")
    _write(partial / "pyvenv.cfg", b"# no home: keeps the interpreter from the parent's\n")
    for path in extensions:
        _copy(path, dynload / path.name, 0o755)
    for name, path in shared_libraries(loader, [python, *extensions]).items():
        _copy(path, partial / "lib" / name, 0o755)
    _copy(loader, partial / "ld.so", 0o755)
    _copy(python, partial / "python", 0o755)
    _copy(Path(launcher), partial / "crucible-launch", 0o755)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(partial, out)
    return out


def interpreter_of(binary: Path) -> str:
    """The dynamic loader an ELF64 little-endian executable names (its PT_INTERP)."""
    data = binary.read_bytes()
    if data[:4] != b"\x7fELF" or data[4:6] != b"\x02\x01":
        raise ValueError(f"{binary}: not a 64-bit little-endian ELF file")
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    entsize, count = struct.unpack_from("<HH", data, 0x36)
    for index in range(count):
        header = phoff + index * entsize
        (kind,) = struct.unpack_from("<I", data, header)
        if kind == _PT_INTERP:
            offset, _, _, size = struct.unpack_from("<QQQQ", data, header + 8)
            return data[offset : offset + size].rstrip(b"\0").decode()
    raise ValueError(f"{binary}: statically linked, nothing to bundle")


def shared_libraries(loader: Path, objects: List[Path]) -> Dict[str, Path]:
    """Every library the objects load, by the name they ask for, as the loader resolves it."""
    found: Dict[str, Path] = {}
    for obj in objects:
        listing = subprocess.run(
            [str(loader), "--list", str(obj)], check=True, capture_output=True, text=True
        ).stdout
        for line in listing.splitlines():
            match = _LIST_LINE.match(line)
            if match and os.path.realpath(match.group(2)) != str(loader):
                found[match.group(1)] = Path(os.path.realpath(match.group(2)))
            elif "not found" in line:
                raise RuntimeError(f"{obj}: {line.strip()}")
    return dict(sorted(found.items()))


def find_modules() -> Tuple[Dict[str, Path], List[Path]]:
    """The wrapper's modules and the stdlib ones they import, without site-packages:
    (zip entry name -> source file, extension module files)."""
    root = Path(__file__).resolve().parent.parent
    path = [str(root)] + [p for p in sys.path[1:] if p and "-packages" not in p]
    finder = modulefinder.ModuleFinder(path=path, excludes=list(NEVER_IMPORTED))
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "roots.py"
        script.write_text("".join(f"import {name}\n" for name in [*ROOTS, *_codecs()]))
        finder.run_script(str(script))
    sources: Dict[str, Path] = {}
    extensions: List[Path] = []
    for name, module in finder.modules.items():
        # modulefinder.Module: typeshed declares neither attribute.
        file: Optional[str] = getattr(module, "__file__", None)
        if name == "__main__" or not file:
            continue  # the script itself, built-in modules
        if file.endswith(".py"):
            package = getattr(module, "__path__", None)
            stem = name.replace(".", "/") + ("/__init__" if package else "")
            sources[stem + ".pyc"] = Path(file)
        elif "." in name:
            raise RuntimeError(f"extension module inside a package: {name}")
        else:
            extensions.append(Path(file))
    return dict(sorted(sources.items())), sorted(extensions)


def _codecs() -> Iterator[str]:
    import encodings

    yield "encodings"
    for module in pkgutil.iter_modules(encodings.__path__):
        yield "encodings." + module.name


def write_zip(out: Path, sources: Dict[str, Path]) -> None:
    """Stored, not deflated: zipimport would need zlib, which may be an extension module."""
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(out, "w") as archive:
        for entry, source in sources.items():
            compiled = Path(tmp) / "module.pyc"
            py_compile.compile(
                str(source),
                cfile=str(compiled),
                dfile=entry[:-1],
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
            info = zipfile.ZipInfo(entry, date_time=_TIMESTAMP)
            info.external_attr = 0o644 << 16
            archive.writestr(info, compiled.read_bytes())


def _copy(source: Path, target: Path, mode: int) -> None:
    shutil.copyfile(source, target)
    os.chmod(target, mode)


def _write(target: Path, data: bytes) -> None:
    target.write_bytes(data)
    os.chmod(target, 0o644)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wrapper.bundle", description=__doc__)
    parser.add_argument("--launcher", required=True, help="the static crucible-launch binary")
    parser.add_argument("out", help="directory to write (replaced)")
    args = parser.parse_args(argv)
    print(build(args.out, args.launcher))
    return 0


if __name__ == "__main__":
    sys.exit(main())

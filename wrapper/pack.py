"""Build the single-file wrapper: ``python -m wrapper.pack OUT``.

The result is a zipapp (stdlib ``zipapp`` format: a ``#!`` line and a zip) holding the
``wrapper`` package and, of the ``wire`` package, only its docstring-only ``__init__``,
``channel`` and ``hardening`` (stdlib only, 3.8; the rest of ``wire`` is not), runnable as
``python -I -S OUT -- CMD...`` by any CPython >= 3.8. It is reproducible: entries are sorted,
stored uncompressed (no dependence on the zlib version) and carry a fixed timestamp and mode,
so the same sources always give the same bytes.
"""

import io
import os
import sys
import zipapp
import zipfile
from pathlib import Path
from typing import List, Optional, Union

INTERPRETER = "/usr/bin/env python3"
# The parts of the wire contract the wrapper imports; each must stay stdlib-only and 3.8-valid.
WIRE_MODULES = ("__init__.py", "channel.py", "hardening.py")
FILE_NAME = "crucible-wrapper"
_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest a zip entry can carry
_UNIX = 3
_MAIN = b'''"""Entry point of the crucible-wrapper zipapp."""
from wrapper import cli

cli.exit_now(cli.main())
'''


def build(out_path: Union[str, "os.PathLike[str]"]) -> Path:
    """Write the zipapp to ``out_path`` (atomically, mode 0755) and return its path."""
    out = Path(out_path)
    archive = io.BytesIO(_zip_bytes())
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name("." + out.name + ".partial")
    try:
        zipapp.create_archive(archive, partial, interpreter=INTERPRETER)
        os.chmod(partial, 0o755)
        os.replace(partial, out)
    except BaseException:
        if partial.exists():
            partial.unlink()
        raise
    return out


def _zip_bytes() -> bytes:
    package = Path(__file__).resolve().parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        _add(archive, "__main__.py", _MAIN)
        for name in WIRE_MODULES:
            _add(archive, "wire/" + name, (package.parent / "wire" / name).read_bytes())
        for source in sorted(package.glob("*.py")):
            _add(archive, "wrapper/" + source.name, source.read_bytes())
    return buffer.getvalue()


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    entry = zipfile.ZipInfo(name, date_time=_TIMESTAMP)
    entry.create_system = _UNIX
    entry.external_attr = 0o644 << 16
    entry.compress_type = zipfile.ZIP_STORED
    archive.writestr(entry, data)


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        sys.stderr.write(f"usage: python -m wrapper.pack OUT  (e.g. dist/{FILE_NAME})\n")
        return 2
    print(build(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

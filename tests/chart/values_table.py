"""The chart README's values table, generated from values.yaml's helm-docs comments.

A key preceded by a ``# --`` comment is a documented value (its description runs on over the
following ``#`` lines; ``# @default -- text`` replaces the shown default). A key without one
must be a group whose every key is documented. Usage::

    python -m tests.chart.values_table --write    # regenerate charts/crucible/README.md's table
    python -m tests.chart.values_table --check    # exit 1 if the README is out of date
"""

import argparse
import dataclasses
import json
import pathlib
import re
import sys
from typing import Any

import yaml

CHART = pathlib.Path(__file__).resolve().parents[2] / "charts" / "crucible"
START = "<!-- values-table:start -->"
END = "<!-- values-table:end -->"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")


@dataclasses.dataclass
class Value:
    path: str
    description: str
    default_text: str | None


class UndocumentedError(Exception):
    pass


def documented(values_text: str) -> list[Value]:
    """Every ``# --`` documented key in file order, by dotted path."""
    found: list[Value] = []
    stack: list[tuple[int, str]] = []
    doc: list[str] | None = None
    default_text: str | None = None
    for line in values_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            doc, default_text = [stripped[4:].strip()], None
        elif stripped.startswith("# @default --"):
            default_text = stripped[len("# @default --") :].strip()
        elif stripped.startswith("#") and doc is not None:
            doc.append(stripped[1:].strip())
        elif (match := _KEY.match(line)) is not None:
            indent = len(match["indent"])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, match["key"]))
            if doc is not None:
                path = ".".join(key for _, key in stack)
                found.append(Value(path, " ".join(d for d in doc if d), default_text))
            doc, default_text = None, None
    return found


def _lookup(tree: Any, path: str) -> Any:
    for key in path.split("."):
        tree = tree[key]
    return tree


def undocumented(values_text: str) -> list[str]:
    """Leaves of values.yaml that are neither documented nor inside a documented key."""
    paths = {v.path for v in documented(values_text)}
    missing: list[str] = []

    def walk(tree: dict[str, Any], prefix: str) -> None:
        for key, value in tree.items():
            path = f"{prefix}{key}"
            if path in paths:
                continue
            if isinstance(value, dict) and value:
                walk(value, path + ".")
            else:
                missing.append(path)

    walk(yaml.safe_load(values_text), "")
    return missing


def _default(tree: dict[str, Any], value: Value) -> str:
    if value.default_text is not None:
        return value.default_text
    shown = json.dumps(_lookup(tree, value.path), separators=(",", ":"))
    return f"`{shown}`"


def table(values_text: str) -> str:
    tree = yaml.safe_load(values_text)
    rows = ["| Key | Default | Description |", "| --- | --- | --- |"]
    for value in documented(values_text):
        cells = [f"`{value.path}`", _default(tree, value), value.description]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def readme_with_table(readme: str, values_text: str) -> str:
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table(values_text)}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the README's table")
    parser.add_argument("--check", action="store_true", help="fail if the README is stale")
    args = parser.parse_args()
    values_text = (CHART / "values.yaml").read_text()
    if missing := undocumented(values_text):
        print("undocumented values: " + ", ".join(missing), file=sys.stderr)
        return 1
    readme_path = CHART / "README.md"
    current = readme_path.read_text()
    wanted = readme_with_table(current, values_text)
    if args.write:
        readme_path.write_text(wanted)
    elif current != wanted:
        print(
            f"{readme_path} is out of date: python -m tests.chart.values_table --write",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

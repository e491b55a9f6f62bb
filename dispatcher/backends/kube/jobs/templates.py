"""The operator-owned Job template: load and validate it once, render it per evaluation.

Placeholders are ``${crucible.NAME}`` (see ``charts/crucible/files/job-template.yaml``). That
syntax collides neither with Helm's ``{{ }}`` nor with Kubernetes' ``$(VAR)``, and a shell
rejects ``${crucible.x}`` as a bad substitution, so it never means something else in a script.

Rendering is injection-proof by construction: the template is parsed once (safe loader, one
document, JSON-compatible), and each render rebuilds that parsed tree, replacing placeholder
scalars with typed values. A user string is never parsed as YAML; a placeholder inside a larger
string is substituted as text; list-valued placeholders are spliced into lists. Text placed
where the kubelet expands ``$(VAR)`` (command, args, env values) has its ``$`` doubled, so a
user's ``$(SECRET)`` stays literal.
"""

import dataclasses
import json
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import yaml

from dispatcher import errors, user_env

PLACEHOLDER = re.compile(r"\$\{crucible\.([A-Za-z0-9_]*)\}")
_MARKER = "${crucible."

SCALAR_PLACEHOLDERS = frozenset(
    {"job_name", "eval_id", "eval_label", "image", "timeout_seconds", "cpu", "memory", "created_at"}
)
LIST_PLACEHOLDERS = frozenset({"command", "env"})
REQUIRED_PLACEHOLDERS = frozenset({"image", "command", "cpu", "memory", "env"})
# Must sit in the main container: without them the user's code would not run there.
MAIN_CONTAINER_PLACEHOLDERS = frozenset({"image", "command"})

_CONTAINER_LISTS = ("containers", "initContainers")

Path = tuple[str | int, ...]


@dataclasses.dataclass(frozen=True)
class Values:
    """What one evaluation puts into the template."""

    job_name: str
    eval_id: str
    eval_label: str
    image: str
    command: list[str]
    timeout_seconds: int
    cpu: str
    memory: str
    env: dict[str, str]
    created_at: str

    def problems(self) -> dict[str, str]:
        """One message per invalid field (the API's 422 details); empty when all is well."""
        found: dict[str, str] = {}
        if not self.command:
            found["command"] = "must not be empty"
        texts = [*self.command, *self.env.values(), self.image, self.eval_id]
        if any("\x00" in t for t in texts):
            found["command"] = "NUL characters cannot be passed to a process"
        for name in self.env:
            message = user_env.problem(name)
            if message:
                found[f"env.{name[:64]}"] = message
        return found


def kubelet_expands(path: Path) -> bool:
    """True for container command/args items and env values, where ``$(VAR)`` is expanded."""
    for i, part in enumerate(path[:-2]):
        if part in _CONTAINER_LISTS and isinstance(path[i + 1], int):
            rest = path[i + 2 :]
            if rest[:1] in (("command",), ("args",)):
                return True
            return rest[:1] == ("env",) and rest[-1:] == ("value",)
    return False


def escape_expansion(text: str) -> str:
    return text.replace("$", "$$")


class JobTemplate:
    """A parsed, validated Job template. Build with ``load`` or ``parse``; render per request."""

    def __init__(self, tree: dict[str, Any], *, source: str, main_container: str | None) -> None:
        self._tree = tree
        self.source = source
        self.main_container = _validate(tree, source=source, main_container=main_container)

    def render(self, values: Values) -> dict[str, Any]:
        problems = values.problems()
        if problems:
            raise errors.InvalidRequestError("invalid evaluation", details=problems)
        rendered = _Renderer(values).node(self._tree, ())
        assert isinstance(rendered, dict)
        return rendered


def parse(
    text: str, *, source: str = "<template>", main_container: str | None = None
) -> JobTemplate:
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise errors.TemplateError(f"{source}: not valid YAML: {errors.upstream_text(e)}") from e
    if len(documents) != 1:
        raise errors.TemplateError(f"{source}: expected one YAML document, found {len(documents)}")
    try:
        # A JSON round trip unshares YAML aliases and rejects dates, binary and other non-JSON.
        tree = json.loads(json.dumps(documents[0]))
    except (TypeError, ValueError) as e:
        raise errors.TemplateError(f"{source}: holds values JSON cannot carry: {e}") from e
    if not isinstance(tree, dict):
        raise errors.TemplateError(f"{source}: the document is not a mapping")
    return JobTemplate(tree, source=source, main_container=main_container)


def load(path: str, *, main_container: str | None = None) -> JobTemplate:
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise errors.TemplateError(f"cannot read the Job template {path}: {e}") from e
    return parse(text, source=path, main_container=main_container)


def containers(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod's ``containers`` list of a (rendered or template) Job tree."""
    result: list[dict[str, Any]] = tree["spec"]["template"]["spec"]["containers"]
    return result


class _Renderer:
    def __init__(self, values: Values) -> None:
        self._values = values

    def node(self, node: Any, path: Path) -> Any:
        if isinstance(node, dict):
            return {k: self.node(v, (*path, k)) for k, v in node.items()}
        if isinstance(node, list):
            out: list[Any] = []
            for item in node:
                name = _whole_placeholder(item)
                if name in LIST_PLACEHOLDERS:
                    out.extend(self.list_value(name, (*path, len(out))))
                else:
                    out.append(self.node(item, (*path, len(out))))
            return out
        if isinstance(node, str) and _MARKER in node:
            return self.scalar(node, path)
        return node

    def scalar(self, text: str, path: Path) -> Any:
        name = _whole_placeholder(text)
        if name in LIST_PLACEHOLDERS:
            return self.list_value(name, (*path, 0))
        escape = kubelet_expands(path)
        if name == "timeout_seconds" and not escape:
            return self._values.timeout_seconds  # an int stays an int (command items are text)

        def text_of(match: re.Match[str]) -> str:
            value = str(getattr(self._values, match.group(1)))
            return escape_expansion(value) if escape else value

        return PLACEHOLDER.sub(text_of, text)

    def list_value(self, name: str, first_item: Path) -> list[Any]:
        """Items of a list placeholder; ``first_item`` is where the first one lands."""
        escape = kubelet_expands(first_item)
        if name == "command":
            return [escape_expansion(a) if escape else a for a in self._values.command]
        env_escape = kubelet_expands((*first_item, "value"))
        return [
            {"name": k, "value": escape_expansion(v) if env_escape else v}
            for k, v in self._values.env.items()
        ]


def _whole_placeholder(node: Any) -> str | None:
    if isinstance(node, str):
        match = PLACEHOLDER.fullmatch(node)
        if match:
            return match.group(1)
    return None


def _walk(node: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            if _MARKER in k:
                raise errors.TemplateError(f"placeholder in a mapping key at {_show(path)}: {k!r}")
            yield from _walk(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, (*path, i))


def _show(path: Path) -> str:
    return "/".join(str(p) for p in path) or "/"


def _placeholders(tree: dict[str, Any], source: str) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for path, node in _walk(tree, ()):
        if not isinstance(node, str) or _MARKER not in node:
            continue
        names = PLACEHOLDER.findall(node)
        if node.count(_MARKER) != len(names):
            raise errors.TemplateError(
                f"{source}: malformed placeholder at {_show(path)}: {node!r}"
            )
        for name in names:
            if name not in SCALAR_PLACEHOLDERS | LIST_PLACEHOLDERS:
                raise errors.TemplateError(
                    f"{source}: unknown placeholder ${{crucible.{name}}} at {_show(path)}; known: "
                    + ", ".join(sorted(SCALAR_PLACEHOLDERS | LIST_PLACEHOLDERS))
                )
            if name in LIST_PLACEHOLDERS and PLACEHOLDER.fullmatch(node) is None:
                raise errors.TemplateError(
                    f"{source}: ${{crucible.{name}}} is a list; it must be a whole value or list "
                    f"item, not part of text, at {_show(path)}"
                )
        found.extend((path, name) for name in names)
    return found


def _validate(tree: dict[str, Any], *, source: str, main_container: str | None) -> str:
    """Check the template's shape and placeholders; returns the main container's name."""
    if tree.get("apiVersion") != "batch/v1" or tree.get("kind") != "Job":
        raise errors.TemplateError(f"{source}: not a Job (want apiVersion batch/v1, kind Job)")
    pod = tree.get("spec", {}).get("template", {}).get("spec")
    if not isinstance(pod, dict):
        raise errors.TemplateError(f"{source}: spec.template.spec (the pod) is missing")
    listed = pod.get("containers")
    if not isinstance(listed, list) or not listed:
        raise errors.TemplateError(f"{source}: the pod has no containers")
    if not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in listed):
        raise errors.TemplateError(f"{source}: every container needs a name")
    names = [c["name"] for c in listed]
    main = main_container or names[0]
    if main not in names:
        raise errors.TemplateError(f"{source}: main container {main!r} not in {names}")
    found = _placeholders(tree, source)
    missing = REQUIRED_PLACEHOLDERS - {name for _, name in found}
    if missing:
        raise errors.TemplateError(
            f"{source}: missing placeholders: "
            + ", ".join(f"${{crucible.{m}}}" for m in sorted(missing))
        )
    main_path = ("spec", "template", "spec", "containers", names.index(main))
    in_main = {name for path, name in found if path[: len(main_path)] == main_path}
    for name in sorted(MAIN_CONTAINER_PLACEHOLDERS - in_main):
        raise errors.TemplateError(
            f"{source}: ${{crucible.{name}}} must be used in the main container {main!r}"
        )
    return main

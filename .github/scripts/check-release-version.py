#!/usr/bin/env python3
"""Checks a release tag against the versions in the tree, before anything is published.

    .github/scripts/check-release-version.py vX.Y.Z [REPO]

The rule (docs/releasing.md): the tag is ``v`` + the application's version, which
``pyproject.toml``'s ``version`` and the chart's ``appVersion`` both state; the chart's own
``version`` is SemVer and moves on its own (chart-testing wants a bump on every chart change, a
release or not). Prints ``app_version=`` and ``chart_version=`` lines, also appended to
``$GITHUB_OUTPUT`` when the workflow sets it. Standard library only: it runs on a bare runner.
"""

import os
import pathlib
import re
import sys
import tomllib

# SemVer 2.0.0 without build metadata: what helm accepts as a chart version and OCI as a tag.
SEMVER = r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"


def chart_field(chart_yaml: str, key: str) -> str:
    """A top-level scalar of Chart.yaml, quoted or not (the file has no nested form of these)."""
    found = re.search(rf"^{key}:\s*[\"']?([^\"'\s#]+)[\"']?\s*(#.*)?$", chart_yaml, re.M)
    if found is None:
        raise SystemExit(f"charts/crucible/Chart.yaml has no top-level {key}")
    return found.group(1)


def check(tag: str, repo: pathlib.Path) -> list[str]:
    """The problems found, each a sentence; empty when the tag may be released."""
    chart_yaml = (repo / "charts" / "crucible" / "Chart.yaml").read_text()
    app_version = chart_field(chart_yaml, "appVersion")
    chart_version = chart_field(chart_yaml, "version")
    with (repo / "pyproject.toml").open("rb") as f:
        package_version = tomllib.load(f)["project"]["version"]
    problems = []
    if not re.fullmatch(f"v{SEMVER}", tag):
        problems.append(f"tag {tag!r} is not v<MAJOR>.<MINOR>.<PATCH>[-<pre-release>]")
    if tag != f"v{app_version}":
        problems.append(
            f"tag {tag} does not match the chart's appVersion {app_version} (want v{app_version})"
        )
    if package_version != app_version:
        problems.append(
            f"pyproject.toml's version {package_version} differs from the chart's appVersion "
            f"{app_version}"
        )
    if not re.fullmatch(SEMVER, chart_version):
        problems.append(f"the chart's version {chart_version!r} is not SemVer")
    if not problems:
        outputs = f"app_version={app_version}\nchart_version={chart_version}\n"
        print(outputs, end="")
        if os.environ.get("GITHUB_OUTPUT"):
            with open(os.environ["GITHUB_OUTPUT"], "a") as out:
                out.write(outputs)
    return problems


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    repo = pathlib.Path(argv[2] if len(argv) == 3 else ".")
    problems = check(argv[1], repo)
    for problem in problems:
        # The ::error:: prefix makes GitHub show the line on the run's summary page.
        print(f"::error::release check: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

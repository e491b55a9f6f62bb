"""The ``crucible`` command: ``serve``, ``submit``, ``status``, ``cancel``."""

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import pydantic

import crucible
from crucible.async_client import AsyncClient
from crucible.endpoint import DEFAULT_URL
from dispatcher import client as api
from dispatcher.settings import DispatcherSettings

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crucible", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the dispatcher (settings: CRUCIBLE_* env)")
    serve.add_argument("--backend", choices=["local", "kubernetes"])
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    submit = commands.add_parser("submit", help="submit code or a command")
    source = submit.add_mutually_exclusive_group()
    source.add_argument("code", nargs="?", help="Python code; '-' reads it from stdin")
    source.add_argument("-f", "--file", help="read the code from this file")
    submit.add_argument(
        "--command", dest="argv", nargs=argparse.REMAINDER, help="run this command (the rest)"
    )
    submit.add_argument("--image")
    submit.add_argument("--timeout", type=float, help="seconds")
    submit.add_argument("--memory", help="e.g. 512Mi")
    submit.add_argument("--cpu", help="e.g. 500m")
    submit.add_argument("--eval-id")
    submit.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    submit.add_argument("--watch", action="store_true", help="stream output until it ends")

    for name, text in (("status", "show an evaluation"), ("cancel", "cancel an evaluation")):
        command = commands.add_parser(name, help=text)
        command.add_argument("eval_id")
    for command in (submit, *(commands.choices[n] for n in ("status", "cancel"))):
        command.add_argument("--url", default=os.environ.get("CRUCIBLE_URL", DEFAULT_URL))
        command.add_argument("--token", default=os.environ.get("CRUCIBLE_TOKEN"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    try:
        return asyncio.run(_client_command(args))
    except crucible.ApiError as e:
        print(f"crucible: {e}", file=sys.stderr)
        return EXIT_USAGE if e.status == 422 else 1
    except crucible.CrucibleError as e:
        print(f"crucible: cannot reach {args.url}: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"crucible: {e}", file=sys.stderr)
        return EXIT_USAGE


def settings_problems(error: pydantic.ValidationError) -> str:
    """The settings' errors without their input values: those hold API tokens and keys."""
    problems = error.errors(include_url=False, include_input=False, include_context=False)
    lines = [f"  {'.'.join(map(str, p['loc'])) or 'settings'}: {p['msg']}" for p in problems]
    return "crucible: invalid settings:\n" + "\n".join(lines)


def _serve(args: argparse.Namespace) -> int:
    from dispatcher.serve import serve

    overrides = {k: v for k in ("backend", "host", "port") if (v := getattr(args, k)) is not None}
    try:
        settings = DispatcherSettings(**overrides)
    except pydantic.ValidationError as e:
        print(settings_problems(e), file=sys.stderr)
        return EXIT_USAGE
    serve(settings)
    return 0


async def _client_command(args: argparse.Namespace) -> int:
    async with AsyncClient(args.url, args.token, stream_timeout=None) as client:
        if args.command == "status":
            _print_json(api.as_json(await client.get(args.eval_id)))
            return 0
        if args.command == "cancel":
            _print_json(api.as_json(await client.cancel(args.eval_id)))
            return 0
        body = submission_body(args)
        record = await client.submit(body.pop("code", None), body.pop("command", None), **body)
        if not args.watch:
            _print_json(api.as_json(record))
            return 0
        print(f"crucible: submitted {record.eval_id}", file=sys.stderr, flush=True)
        return await api.watch(client, record.eval_id)


def submission_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if args.file:
        with open(args.file, encoding="utf-8") as f:
            body["code"] = f.read()
    elif args.code == "-":
        body["code"] = sys.stdin.read()
    elif args.code is not None:
        body["code"] = args.code
    if args.argv:
        body["command"] = args.argv
    optional = {
        "image": args.image,
        "timeout_seconds": args.timeout,
        "eval_id": args.eval_id,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    resources = {k: v for k, v in (("memory", args.memory), ("cpu", args.cpu)) if v is not None}
    if resources:
        body["resources"] = resources
    if args.env:
        body["env"] = dict(_env_pair(item) for item in args.env)
    return body


def _env_pair(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep:
        raise ValueError(f"--env {item!r}: expected NAME=VALUE")
    return name, value


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))

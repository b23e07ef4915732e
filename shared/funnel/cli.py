"""The `funnel` command line.

Each command lives in the product area that owns it; this module only knows the
command names and imports the owning module lazily, so `funnel form-submit`
does not pay for the local runtime's imports and vice versa.

A command module exposes ``add_arguments(parser, command)`` and
``run(args, command) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "dev": ("funnel.local.cli", "run the whole product locally (PostgreSQL, moto, API gateway, workers)"),
    "migrate": ("funnel.platform.cli", "upgrade the control database and every tenant database"),
    "tenants": ("funnel.platform.cli", "create and list tenants"),
    "llm": ("funnel.platform.cli", "read and change the global LLM registry"),
    "form-submit": ("funnel.outreach.forms.cli", "find a company's contact form and submit a message into it"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="funnel", description="Funnel command line")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text)
        module = importlib.import_module(module_name)
        module.add_arguments(command_parser, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Only build the one sub-parser that is asked for: importing every area is slow.
    if argv and argv[0] in COMMANDS:
        name = argv[0]
        parser = argparse.ArgumentParser(prog=f"funnel {name}", description=COMMANDS[name][1])
        module = importlib.import_module(COMMANDS[name][0])
        module.add_arguments(parser, name)
        args = parser.parse_args(argv[1:])
        return int(module.run(args, name) or 0)
    build_parser().parse_args(argv)
    return 2


if __name__ == "__main__":
    sys.exit(main())

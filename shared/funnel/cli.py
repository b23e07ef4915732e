"""The `funnel` command line.

The product's own commands (what an operator runs from the deployed artifact) live in the
product area that owns them; this module only knows their names and imports the owning
module lazily. Other distributions add commands through the ``funnel.commands`` entry-point
group: funnel-dev (devtools/) registers ``dev`` and ``form-submit`` that way, so the product
never imports, or asks whether it has, the development tools.

A command module exposes ``add_arguments(parser, command)``, ``run(args, command) -> int``
and, for an entry-point command, ``HELP`` (one line; the module docstring's first line otherwise).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points
from types import ModuleType

ENTRY_POINT_GROUP = "funnel.commands"

COMMANDS: dict[str, tuple[str, str]] = {
    "migrate": ("funnel.platform.cli", "upgrade the control database and every tenant database"),
    "tenants": ("funnel.platform.cli", "create, list, migrate, delete and move tenants"),
    "servers": ("funnel.platform.cli", "the database servers tenants are placed on"),
    "llm": ("funnel.platform.cli", "read and change the global LLM registry"),
}


def _plugins() -> dict[str, object]:
    """Entry points of the ``funnel.commands`` group, by command name (the product's names win)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in COMMANDS}


def _help(module: ModuleType) -> str:
    text = getattr(module, "HELP", None) or (module.__doc__ or "").strip().splitlines()[0:1]
    return text if isinstance(text, str) else (text[0] if text else "")


def _load(name: str, plugins: dict[str, object]) -> tuple[ModuleType, str]:
    if name in COMMANDS:
        module_name, help_text = COMMANDS[name]
        return importlib.import_module(module_name), help_text
    module = plugins[name].load()  # type: ignore[attr-defined]
    return module, _help(module)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="funnel", description="Funnel command line")
    sub = parser.add_subparsers(dest="command", required=True)
    plugins = _plugins()
    for name in [*COMMANDS, *sorted(plugins)]:
        module, help_text = _load(name, plugins)
        command_parser = sub.add_parser(name, help=help_text)
        module.add_arguments(command_parser, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Only build the one sub-parser that is asked for: importing every area is slow.
    if argv and not argv[0].startswith("-"):
        name = argv[0]
        plugins = _plugins() if name not in COMMANDS else {}
        if name in COMMANDS or name in plugins:
            module, help_text = _load(name, plugins)
            parser = argparse.ArgumentParser(prog=f"funnel {name}", description=help_text)
            module.add_arguments(parser, name)
            args = parser.parse_args(argv[1:])
            return int(module.run(args, name) or 0)
    build_parser().parse_args(argv)
    return 2


if __name__ == "__main__":
    sys.exit(main())

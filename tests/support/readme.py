"""The README's shell walkthroughs, as the tests that run them read them."""
from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def readme_block(heading: str) -> str:
    """The first ```sh block under the README section whose heading starts with ``heading``."""
    section = README[README.index("\n## " + heading):]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, f"no shell block under {heading!r}"
    return match.group(1)

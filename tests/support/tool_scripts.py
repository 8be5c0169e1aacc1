"""Loading a benchmark from tools/ as its own script would (it imports its siblings by name)."""

import importlib
import sys
from types import ModuleType
from typing import Iterator

from media import DATA

TOOLS = DATA.parent.parent / "tools"


def load_tool(name: str) -> Iterator[ModuleType]:
    """Yield tools/`name`.py as a module, with tools/ on the path only meanwhile (for module fixtures)."""
    sys.path.insert(0, str(TOOLS))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(TOOLS))

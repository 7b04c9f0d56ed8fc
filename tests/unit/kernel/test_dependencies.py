"""Every third-party module our packages import is declared in pyproject.toml: a module that
arrives only through another package's requirements can vanish with that package's next release."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib

from tests.unit.kernel.sources import PACKAGES, ROOT, parsed


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_norm(re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0]) for d in project["dependencies"]}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported() -> dict[str, set[str]]:
    """Top-level module -> the files importing it (lazy and TYPE_CHECKING imports included)."""
    found: dict[str, set[str]] = {}
    for path, tree in parsed().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_declared() -> None:
    declared = _declared()
    dists = md.packages_distributions()
    third_party = {m: files for m, files in _imported().items()
                   if m not in sys.stdlib_module_names and m not in PACKAGES}
    assert "zmq" in third_party  # the walk saw our imports
    missing = {m: sorted(files)[:3] for m, files in third_party.items()
               if not {_norm(d) for d in dists.get(m, [])} & declared}
    assert missing == {}, "declare these in pyproject.toml [project] dependencies"


def test_ccxt_is_pinned_exactly_and_the_rest_by_range() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for d in deps:
        if _norm(d).startswith("ccxt"):
            assert "==" in d, d
        else:
            assert ">=" in d and "<" in d, d

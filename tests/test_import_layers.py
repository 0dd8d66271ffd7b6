"""The import layers hold: core <- actors <- supervisor, and supervisor.runtime needs only core.

Every module of core/, actors/ and supervisor/ is parsed with `ast` (not imported, so a
forbidden import inside a function or under TYPE_CHECKING counts too) and each import
is checked against the layer rules. The checker itself is shown to catch a forbidden
import on a synthetic tree, so a green run means the rule was checked, not skipped.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "actors", "supervisor")


@dataclass(frozen=True)
class Layer:
    """Modules under `importer` may not import anything under `forbidden`, except `allowed`."""

    importer: str
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()


LAYERS = (
    Layer("core", forbidden=("actors", "supervisor")),
    Layer("actors", forbidden=("supervisor",)),
    Layer(
        "supervisor.runtime", forbidden=("actors", "supervisor"), allowed=("supervisor.runtime",)
    ),
)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(module: str, is_package: bool, tree: ast.Module) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `tree`, relative ones resolved."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from supervisor import runtime` imports the submodule supervisor.runtime
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def layer_violations(root: Path, layers: tuple[Layer, ...] = LAYERS) -> list[str]:
    """Every import under `root` that breaks one of `layers`, as 'file:line: a -> b'."""
    violations: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = _module_name(root, path)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, target in _imported(module, path.name == "__init__.py", tree):
                for layer in layers:
                    if not _within(module, layer.importer):
                        continue
                    forbidden = any(_within(target, name) for name in layer.forbidden)
                    allowed = any(_within(target, name) for name in layer.allowed)
                    if forbidden and not allowed:
                        where = path.relative_to(root)
                        violations.append(f"{where}:{line}: {module} -> {target}")
    return violations


def test_the_source_tree_keeps_its_import_layers() -> None:
    """No module of core/, actors/ or supervisor/ imports across a layer it must not."""
    assert (ROOT / "supervisor" / "runtime").is_dir()
    assert layer_violations(ROOT) == []


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name in (*PACKAGES, "supervisor/runtime", "supervisor/pipeline"):
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "__init__.py").touch()
    for relative, text in files.items():
        (root / relative).write_text(text, encoding="utf-8")
    return root


CLEAN = {
    "core/types.py": "import anyio\n",
    "actors/actor.py": "from core.types import X\n",
    "supervisor/runtime/_spec.py": "from core.types import X\nfrom . import _clock\n",
    "supervisor/pipeline/wiring.py": (
        "from actors.actor import A\nfrom supervisor.runtime import S\n"
    ),
}


def test_a_tree_that_keeps_the_layers_has_no_violations(tmp_path: Path) -> None:
    """The synthetic tree the next test breaks is itself clean, so each break is what fails."""
    assert layer_violations(_tree(tmp_path, CLEAN)) == []


@pytest.mark.parametrize(
    ("relative", "text", "expected"),
    [
        ("core/types.py", "from actors.actor import A\n", "core.types -> actors.actor"),
        ("core/types.py", "import supervisor.runtime\n", "core.types -> supervisor.runtime"),
        ("actors/actor.py", "from supervisor import Supervisor\n", "actors.actor -> supervisor"),
        (
            "actors/actor.py",
            "def late():\n    from supervisor.pipeline import wiring\n",
            "actors.actor -> supervisor.pipeline",
        ),
        (
            "supervisor/runtime/_spec.py",
            "from supervisor.pipeline.wiring import W\n",
            "supervisor.runtime._spec -> supervisor.pipeline.wiring",
        ),
        (
            "supervisor/runtime/_spec.py",
            "from ..pipeline import wiring\n",
            "supervisor.runtime._spec -> supervisor.pipeline",
        ),
        (
            "supervisor/runtime/_spec.py",
            "from actors.actor import A\n",
            "supervisor.runtime._spec -> actors.actor",
        ),
    ],
)
def test_a_forbidden_import_is_reported(
    tmp_path: Path, relative: str, text: str, expected: str
) -> None:
    """Adding one forbidden import to the clean tree makes the check name it."""
    tree = _tree(tmp_path, CLEAN | {relative: CLEAN.get(relative, "") + text})

    violations = layer_violations(tree)

    assert any(violation.endswith(expected) for violation in violations), violations

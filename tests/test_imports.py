"""The import rules, read from the source (no import runs):

- no role (``provider``, ``solver``, ``verifier``) imports another role;
- no role imports a private module of another package (``tender.chain._abi``, or a ``_name``
  imported from one): roles use the public names of ``tender`` (``tender.chain``,
  ``tender.models``, ``tender.devnet``...);
- the light SDK (``tender.client``, ``tender.chain``, ``tender.intents`` and the CLI's top level)
  imports no role.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROLES = ("provider", "solver", "verifier")


def _imports(path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """Every absolute import of ``path``, anywhere in it: (line, module, names imported from it)."""
    found: list[tuple[int, str, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, tuple(alias.name for alias in node.names)))
    return found


def _modules(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")  # __future__ is not private


def _role_violations(path: Path, own: str) -> list[str]:
    """What ``path``, a module of the role ``own``, imports against the rules."""
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    bad = []
    for line, module, names in _imports(path):
        root = module.split(".")[0]
        if root in ROLES and root != own:
            bad.append(f"{where}:{line}: imports the role {module}")
        if root == own:
            continue  # a role's own private modules are its business
        if any(_private(part) for part in module.split(".")):
            bad.append(f"{where}:{line}: imports the private module {module}")
        bad += [f"{where}:{line}: imports the private {module}.{name}" for name in names if _private(name)]
    return bad


@pytest.mark.parametrize("role", ROLES)
def test_a_role_imports_no_other_role_and_no_private_module(role: str) -> None:
    modules = _modules(role)
    assert modules, f"no modules found under {role}/"
    violations = [v for path in modules for v in _role_violations(path, role)]
    assert violations == []


def test_the_rule_catches_what_it_forbids(tmp_path: Path) -> None:
    """The walker itself: a role module importing another role or a private ``tender`` module,
    in any form, is reported; its own private modules and public ``tender`` names are not."""
    probe = tmp_path / "_probe.py"
    probe.write_text(
        "from provider import JobStore\n"
        "import verifier._audit\n"
        "from tender.chain._abi import DecodedLog\n"
        "from tender.models import _felt\n"
        "def later():\n"
        "    from tender.devnet._configs import write_config\n"
        "from solver._store import Store\n"
        "from tender.chain import Market\n"
    )
    found = _role_violations(probe, "solver")
    assert [v.split(": ", 1)[1] for v in found] == [
        "imports the role provider",
        "imports the role verifier._audit",
        "imports the private module verifier._audit",
        "imports the private module tender.chain._abi",
        "imports the private tender.models._felt",
        "imports the private module tender.devnet._configs",
    ]


def test_the_light_sdk_imports_no_role() -> None:
    sdk = [
        *_modules("tender/client", "tender/chain"),
        ROOT / "tender" / "intents.py",
        ROOT / "tender" / "cli.py",
    ]
    bad = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in sdk
        for line, module, _ in _imports(path)
        if module.split(".")[0] in ROLES
    ]
    assert bad == []

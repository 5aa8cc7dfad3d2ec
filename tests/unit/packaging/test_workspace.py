"""The workspace: one distribution per component, each declaring exactly what it imports.

Static checks over the pyproject files, uv.lock and the sources (no install): a dependency a
component imports but does not declare breaks its image; one it declares but never imports
bloats it. The import contracts themselves are `lint-imports` in `./dev test`.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
# Product components: what images are built from. The devkit is a member too, dev-only.
COMPONENTS = sorted(
    p.parent.name for p in ROOT.glob("*/pyproject.toml")
    if (p.parent / "webordinary").is_dir() and p.parent.name != "devkit"
)
MEMBERS = [*COMPONENTS, "devkit"]


def project(folder: str) -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())
    return data


def requirement_name(spec: str) -> str:
    name = re.match(r"[A-Za-z0-9._-]+", spec)
    assert name, spec
    return re.sub(r"[-_.]+", "-", name[0]).lower()


def top_level_imports(folder: str) -> set[str]:
    """Top-level modules imported anywhere in a component's sources (not relative ones)."""
    found: set[str] = set()
    for path in (ROOT / folder / "webordinary").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def imported_distributions(folder: str) -> set[str]:
    """The distributions that provide a component's third-party and webordinary imports."""
    providers = importlib.metadata.packages_distributions()
    stdlib = sys.stdlib_module_names
    names: set[str] = set()
    for module in top_level_imports(folder) - stdlib - {"__future__"}:
        if module == "webordinary":
            continue
        assert module in providers, f"{folder} imports {module}, which nothing installed provides"
        names.update(requirement_name(d) for d in providers[module])
    for path in (ROOT / folder / "webordinary").rglob("*.py"):
        for match in re.finditer(r"^\s*(?:from|import) webordinary\.(\w+)", path.read_text(), re.M):
            names.add(f"webordinary-{match[1]}")
    return names


def test_the_workspace_has_one_member_per_component_folder() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    members = root["tool"]["uv"]["workspace"]["members"]
    assert sorted(members) == sorted(MEMBERS), "every component folder is a workspace member"
    assert {"contracts", "operator", "hermes", "editor"} <= set(COMPONENTS)
    assert root["tool"]["uv"]["package"] is False, "the root is the dev environment, no package"
    dev_env = {requirement_name(d) for d in root["project"]["dependencies"]}
    assert dev_env == {f"webordinary-{m}" for m in MEMBERS}
    for member in MEMBERS:
        meta = project(member)
        assert meta["project"]["name"] == f"webordinary-{member}"
        assert meta["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["webordinary"]
        assert meta["tool"]["hatch"]["build"]["dev-mode-dirs"] == ["."], "editable: this tree"
        assert not (ROOT / member / "webordinary" / "__init__.py").exists(), "PEP 420 namespace"


@pytest.mark.parametrize("member", MEMBERS)
def test_each_member_declares_exactly_what_it_imports(member: str) -> None:
    declared = {requirement_name(d) for d in project(member)["project"]["dependencies"]}
    imported = imported_distributions(member) - {f"webordinary-{member}"}
    assert imported - declared == set(), f"{member} imports what it does not declare"
    assert declared - imported == set(), f"{member} declares what it never imports"


@pytest.mark.parametrize("member", MEMBERS)
def test_workspace_dependencies_come_from_the_workspace(member: str) -> None:
    meta = project(member)
    internal = {requirement_name(d) for d in meta["project"]["dependencies"]
                if d.startswith("webordinary-")}
    sources = meta.get("tool", {}).get("uv", {}).get("sources", {})
    assert internal == {name for name, src in sources.items() if src == {"workspace": True}}
    if member != "devkit":
        assert internal <= {"webordinary-contracts", "webordinary-kube"}, (
            "components build on the shared contracts and Kubernetes client only")


def test_product_components_depend_on_no_dev_tool() -> None:
    dev_only = {"moto", "kmock", "pytest", "webordinary-devkit", "kubernetes-validate",
                "helm-python-sdk", "hypothesis"}
    for component in COMPONENTS:
        declared = {requirement_name(d) for d in project(component)["project"]["dependencies"]}
        assert not declared & dev_only, component


def test_console_scripts_belong_to_their_component() -> None:
    for member in MEMBERS:
        for name, target in project(member)["project"].get("scripts", {}).items():
            assert target.startswith(f"webordinary.{member}."), (name, target)


def test_the_dev_environment_leaves_out_what_kopf_imports_when_installed() -> None:
    """`import kopf` imports these whenever they are installed: 1-8 s of CPU per operator start
    in the tests, which production images (without them) do not pay."""
    for module in ("kubernetes", "kubernetes_asyncio", "pykube"):
        assert importlib.util.find_spec(module) is None, f"{module} is in the dev environment"
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dev = {requirement_name(d) for d in root["dependency-groups"]["dev"]}
    assert not dev & {"kubernetes", "kubernetes-asyncio", "pykube-ng"}


def test_bench_groups_belong_to_a_bench_and_stay_out_of_the_dev_environment() -> None:
    """`./dev bench NAME` installs a `bench-NAME` group in an environment of its own."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for group in root["dependency-groups"]:
        if group.startswith("bench-"):
            assert (ROOT / "bench" / f"{group.removeprefix('bench-')}.py").is_file(), group
    assert root["tool"]["uv"].get("default-groups", ["dev"]) == ["dev"]
    assert 'grep -q "^bench-$name = " pyproject.toml' in (ROOT / "dev").read_text()


def test_the_lock_file_is_current_and_from_pypi() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    registries = {p["source"]["registry"] for p in lock["package"] if "registry" in p["source"]}
    assert registries == {"https://pypi.org/simple"}
    editable = {p["name"] for p in lock["package"] if "editable" in p["source"]}
    assert editable == {f"webordinary-{m}" for m in MEMBERS}
    uv = Path(sys.executable).with_name("uv")
    if not uv.is_file():
        pytest.skip("uv is not in this environment (./dev setup installs it)")
    check = subprocess.run([str(uv), "lock", "--check", "--offline"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, "uv.lock is stale: run .venv/bin/uv lock\n" + check.stderr


def test_dev_and_the_dockerfile_use_the_uv_the_lock_pins() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (version,) = [p["version"] for p in lock["package"] if p["name"] == "uv"]
    assert f"ARG UV_VERSION={version}\n" in (ROOT / "images" / "Dockerfile").read_text()


def test_stdlib_operator_is_never_shadowed(tmp_path: Path) -> None:
    """`operator/` is a component folder; `import operator` must stay the standard library's."""
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    import operator

    assert Path(operator.__file__).resolve().parent == stdlib
    for cwd in (ROOT, ROOT / "operator", tmp_path):
        probe = subprocess.run(
            [sys.executable, "-c", "import operator, sys; sys.stdout.write(operator.__file__)"],
            cwd=cwd, capture_output=True, text=True, timeout=60, check=True)
        assert Path(probe.stdout).resolve().parent == stdlib, (cwd, probe.stdout)
    for dist in importlib.metadata.distributions():
        for file in dist.files or []:
            assert file.parts[0] not in {"operator", "operator.py"}, (
                f"{dist.metadata['Name']} installs a top-level `operator`")
    assert not (ROOT / "operator" / "__init__.py").exists()
    assert not (ROOT / "operator" / "webordinary" / "__init__.py").exists()

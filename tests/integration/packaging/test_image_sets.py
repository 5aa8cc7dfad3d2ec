"""Each image's Python set, built the way images/Dockerfile builds it (no Docker engine here).

The build-COMPONENT stages are replayed: their COPY instructions into a scratch build context,
then their `uv sync` from uv.lock into a scratch virtualenv (uv's cache, warmed by ./dev setup,
stands for the registry). The set must hold the component and contracts, nothing dev-only, and
import every one of the component's modules.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.unit.helm.test_images import ROOT, chain, parse

# Every product image the Dockerfile builds (a build-COMPONENT stage each); the devkit image
# (the Messages API stand-in for kind) is for development only.
DEV_ONLY = {"devkit"}
TARGETS = tuple(name.removeprefix("build-") for name in parse()[1]
                if name.startswith("build-") and name.removeprefix("build-") not in DEV_ONLY)
NEVER_IN_AN_IMAGE = {"webordinary-devkit", "moto", "kmock", "pytest", "hypothesis",
                     "kubernetes-validate", "helm-python-sdk", "mypy", "ruff", "uv"}
UV = Path(sys.executable).with_name("uv")


def replay_build(target: str, context: Path, venv: Path) -> None:
    """COPY and `uv sync` of the stages that build the target's virtualenv."""
    _, stages = parse()
    workdir = context
    for stage in chain(stages, f"build-{target}"):
        for op, rest in stage.instructions:
            if op == "WORKDIR":
                workdir = context / rest.strip("/")
                workdir.mkdir(parents=True, exist_ok=True)
            elif op == "COPY":
                assert "--from" not in rest
                *sources, dest = rest.split()
                for source in sources:  # Docker's rules: a folder's contents, a file into dest/
                    origin, into = ROOT / source, workdir / dest
                    if origin.is_dir():
                        shutil.copytree(origin, into, dirs_exist_ok=True,
                                        ignore=shutil.ignore_patterns("__pycache__"))
                    else:
                        assert dest.endswith("/"), rest
                        into.mkdir(parents=True, exist_ok=True)
                        shutil.copy(origin, into / origin.name)
            elif op == "RUN" and rest.startswith("uv "):
                env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
                env.update(UV_PROJECT_ENVIRONMENT=str(venv), UV_PYTHON_DOWNLOADS="never",
                           VIRTUAL_ENV="")
                command = [str(UV), *shlex.split(rest)[1:], "--python", sys.executable]
                done = subprocess.run(command, cwd=workdir, env=env, capture_output=True,
                                      text=True, timeout=300)
                assert done.returncode == 0, f"{rest}\n{done.stderr}"


def installed(venv: Path) -> dict[str, int]:
    """Distribution name -> bytes on disk, read from the virtualenv's own metadata."""
    probe = (
        "import importlib.metadata as m, json, re, sys\n"
        "out = {}\n"
        "for d in m.distributions():\n"
        "    name = re.sub(r'[-_.]+', '-', d.metadata['Name']).lower()\n"
        "    out[name] = sum(f.locate().stat().st_size for f in d.files or []\n"
        "                    if f.locate().is_file())\n"
        "json.dump(out, sys.stdout)\n"
    )
    done = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True,
                          text=True, timeout=120, check=True)
    sizes: dict[str, int] = json.loads(done.stdout)
    return sizes


@pytest.fixture(scope="module")
def image_sets(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict[str, Path]:
    assert {"operator", "hermes", "editor"} <= set(TARGETS)
    if not UV.is_file():
        pytest.skip("uv is not in this environment (./dev setup installs it)")
    venvs: dict[str, Path] = {}
    for target in TARGETS:
        scratch = tmp_path_factory.mktemp(target)
        venvs[target] = scratch / "venv"
        replay_build(target, scratch / "context", venvs[target])
    sizes = {t: installed(v) for t, v in venvs.items()}
    report = ["", "image Python sets (from uv.lock):",
              f"{'image':<10}{'packages':>10}{'MB':>10}  largest"]
    for target, dists in sizes.items():
        largest = sorted(dists.items(), key=lambda kv: -kv[1])[:3]
        report.append(f"{target:<10}{len(dists):>10}{sum(dists.values()) / 1e6:>10.1f}  "
                      + ", ".join(f"{n} {s / 1e6:.0f}" for n, s in largest))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n".join(report), flush=True)  # shown in every run, not only on failure
    return venvs


@pytest.mark.parametrize("target", TARGETS)
def test_each_image_holds_its_component_and_contracts_only(
    image_sets: dict[str, Path], target: str
) -> None:
    dists = set(installed(image_sets[target]))
    ours = {d for d in dists if d.startswith("webordinary-")}
    declared = tomllib.loads((ROOT / target / "pyproject.toml").read_text())["project"]
    shared = {d for d in declared["dependencies"] if d.startswith("webordinary-")}
    assert "webordinary-contracts" in shared
    assert ours == {f"webordinary-{target}", *shared}
    assert not dists & NEVER_IN_AN_IMAGE, f"dev-only in the {target} image"
    assert ("claude-agent-sdk" in dists) == (target == "editor"), "the CLI only in the editor"
    if target != "editor":
        assert not {"kubernetes", "kubernetes-asyncio", "gitpython", "jsonschema"} & dists
    site = image_sets[target] / "lib"
    assert not list(site.glob("python3*/site-packages/_webordinary_*.pth")), "not editable"


@pytest.mark.parametrize("target", TARGETS)
def test_each_image_imports_all_of_its_component(
    image_sets: dict[str, Path], target: str
) -> None:
    probe = (
        "import importlib, pkgutil, sys\n"
        f"import webordinary.{target} as component\n"
        f"names = [m.name for m in pkgutil.walk_packages(component.__path__, "
        f"'webordinary.{target}.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "import operator; assert operator.__file__.startswith(sys.base_prefix), operator\n"
        "try:\n"
        "    import webordinary.devkit\n"
        "except ImportError:\n"
        "    print(len(names))\n"
        "else:\n"
        "    sys.exit('the devkit is importable in an image')\n"
    )
    done = subprocess.run([str(image_sets[target] / "bin" / "python"), "-c", probe],
                          cwd=image_sets[target].parent, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 3

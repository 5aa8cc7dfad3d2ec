"""The images, checked statically (no Docker engine here): pinned, non-root, real entrypoints."""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from tests.unit.helm.chart_render import CHART, ROOT

DOCKERFILE = ROOT / "images" / "Dockerfile"
TARGETS = ("operator", "hermes", "editor", "gateway")
PINNED = re.compile(r"^[a-z0-9./-]+:\d+\.\d+\.\d+[a-z0-9.-]*(@sha256:[a-f0-9]{64})?$")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    split = (line.partition(" ") for line in logical)
    return [(head.upper(), rest.strip()) for head, _, rest in split]


def parse() -> tuple[dict[str, str], dict[str, Stage]]:
    """Global ARG defaults and the stages by name."""
    args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for op, rest in instructions(DOCKERFILE.read_text()):
        if op == "FROM":
            match = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", rest, re.IGNORECASE)
            assert match, f"every stage is named: FROM {rest}"
            current = Stage(match[2], match[1])
            stages[current.name] = current
        elif current is None:
            assert op == "ARG", f"only ARG before the first FROM, not {op}"
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            current.instructions.append((op, rest))
    return args, stages


def chain(stages: dict[str, Stage], target: str) -> list[Stage]:
    """The target stage and the stages it builds on, base first."""
    result = [stages[target]]
    while result[0].base in stages:
        result.insert(0, stages[result[0].base])
    return result


def effective(stages: dict[str, Stage], target: str, op: str) -> str | None:
    found = None
    for stage in chain(stages, target):
        for name, rest in stage.instructions:
            if name == op:
                found = rest
    return found


def test_every_base_image_is_pinned() -> None:
    args, stages = parse()
    for stage in stages.values():
        base = stage.base
        if base in stages:
            continue
        ref = re.fullmatch(r"\$\{(\w+)\}", base)
        image = args[ref[1]] if ref else base
        assert PINNED.match(image), f"stage {stage.name}: {image} is not pinned to a version"
    assert args["PYTHON_IMAGE"].startswith("python:3.12."), "Python 3.12 slim"
    assert "slim" in args["PYTHON_IMAGE"]
    assert re.match(r"node:(22|24|26)\.", args["NODE_IMAGE"]), "a Node LTS line (22 or newer)"
    debian = {m[0] for image in (args["PYTHON_IMAGE"], args["NODE_IMAGE"])
              for m in [re.findall(r"bullseye|bookworm|trixie", image)]}
    assert len(debian) == 1, f"node is copied between images: same Debian release, not {debian}"


def test_python_version_satisfies_pyproject() -> None:
    args, _ = parse()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.12"
    assert re.match(r"python:3\.(1[2-9])\.", args["PYTHON_IMAGE"])


@pytest.mark.parametrize("target", TARGETS)
def test_targets_run_as_the_chart_user(target: str) -> None:
    _, stages = parse()
    assert target in stages
    user = effective(stages, target, "USER")
    values = yaml.safe_load((CHART / "values.yaml").read_text())["securityContext"]
    assert user == f"{values['runAsUser']}:{values['runAsGroup']}", (
        f"{target} must end as USER uid:gid of the chart's securityContext, not {user}")
    runtime = " ".join(rest for _, rest in stages["runtime"].instructions)
    assert f"--uid {values['runAsUser']}" in runtime
    assert f"--gid {values['runAsGroup']}" in runtime
    last_user = [i for i, (op, _) in enumerate(stages[target].instructions) if op == "USER"]
    assert last_user, f"{target} sets USER itself"
    assert all(op not in {"RUN", "COPY", "ADD"} for op, _ in
               stages[target].instructions[last_user[-1] + 1:]), "nothing runs after USER"


def component_project(target: str) -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((ROOT / target / "pyproject.toml").read_text())
    return data


@pytest.mark.parametrize("target", TARGETS)
def test_entrypoints_are_the_component_modules(target: str) -> None:
    _, stages = parse()
    entrypoint = effective(stages, target, "ENTRYPOINT")
    init = '"/usr/bin/tini", "--", ' if target == "editor" else ""
    assert entrypoint == f'[{init}"python", "-m", "webordinary.{target}"]'
    scripts = component_project(target)["project"]["scripts"]
    assert scripts[f"webordinary-{target}"] == f"webordinary.{target}.__main__:main"
    assert importlib.util.find_spec(f"webordinary.{target}") is not None
    main = ROOT / target / "webordinary" / target / "__main__.py"
    if not main.is_file():
        pytest.skip(f"{main.relative_to(ROOT)} is not written yet (the image's entrypoint)")
    assert importlib.util.find_spec(f"webordinary.{target}.__main__") is not None
    assert re.search(r"^def main\(", main.read_text(), re.MULTILINE), "the console script's main()"


@pytest.mark.parametrize("target", TARGETS)
def test_each_image_installs_contracts_and_its_component_from_the_lock(target: str) -> None:
    _, stages = parse()
    assert f"build-{target}" in stages
    copies = [rest for stage in chain(stages, f"build-{target}")
              for op, rest in stage.instructions if op == "COPY"]
    sources = {src.rstrip("/") for rest in copies for src in rest.split()[:-1]}
    assert {"contracts/webordinary", f"{target}/webordinary", "uv.lock"} <= sources
    others = {c for c in (*TARGETS, "devkit") if c != target}
    assert not {f"{c}/webordinary" for c in others} & sources, "other components' code"
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"][
        "members"]
    assert {f"{m}/pyproject.toml" for m in members} <= sources, "uv reads every member"
    runs = [rest for op, rest in stages[f"build-{target}"].instructions if op == "RUN"]
    assert runs == [f"uv sync --locked --no-dev --no-editable --package webordinary-{target}"]
    pulled = [rest for op, rest in stages[target].instructions
              if op == "COPY" and "/opt/webordinary" in rest]
    (pulled_from,) = pulled
    assert f"--from=build-{target} " in pulled_from
    assert all("pip install ." not in rest for stage in stages.values()
               for _, rest in stage.instructions), "no install of the whole repository"


def test_editor_has_node_git_init_and_the_claude_cli() -> None:
    _, stages = parse()
    steps = " ".join(rest for stage in chain(stages, "editor") for _, rest in stage.instructions)
    assert "apt-get install" in steps
    assert re.search(r"\bgit\b", steps)
    assert re.search(r"apt-get install [^&]*\btini\b", steps), "an init as PID 1"
    assert "/usr/bin/tini --version" in steps
    assert "--from=node /usr/local/bin/node" in steps
    args, _ = parse()
    node_major = re.match(r"node:(\d+)\.", args["NODE_IMAGE"])
    assert node_major
    assert f"grep -q '^v{node_major[1]}\\.'" in steps, "the build checks the Node major version"
    assert "_bundled" in steps, "the build checks the Claude CLI bundled in the SDK wheel"
    dependencies = component_project("editor")["project"]["dependencies"]
    assert any(d.startswith("claude-agent-sdk") for d in dependencies)
    for other in ("operator", "hermes", "contracts"):
        assert not any(d.startswith("claude-agent-sdk")
                       for d in component_project(other)["project"]["dependencies"])
    assert stages["node"].base == "${NODE_IMAGE}"


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/"))
               or path.startswith(p.rstrip("/") + "/") for p in dockerignore())


def test_build_copies_files_that_exist_and_are_in_the_context() -> None:
    _, stages = parse()
    sources = []
    for stage in stages.values():
        for op, rest in stage.instructions:
            if op == "COPY" and "--from=" not in rest:
                *srcs, _dest = rest.split()
                sources.extend(s.rstrip("/") for s in srcs if not s.startswith("--"))
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: missing"
        assert not ignored(source), f"COPY {source}: excluded by .dockerignore"
    assert {"pyproject.toml", "uv.lock"} <= set(sources), "the images install from the lock"
    for heavy in (".venv", ".git", "node_modules", "tests"):
        assert ignored(heavy), f".dockerignore must exclude {heavy}"


def test_chart_images_are_the_dockerfile_targets() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    text = DOCKERFILE.read_text()
    for target in TARGETS:
        repository = values[target]["image"]["repository"]
        assert repository == f"webordinary/{target}"
        assert f"--target {target:<8} -t {repository}:TAG" in text

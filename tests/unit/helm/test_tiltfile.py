"""The Tiltfile, run against a recording stand-in of Tilt's API (Tilt is not installed here).

Starlark is a subset of Python, so executing the Tiltfile with these functions records every
image, chart and resource it declares; the tests then check them against the repository, the
Dockerfile and the chart rendered with the same values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from tests.unit.helm.chart_render import CHART, ROOT, render
from tests.unit.helm.test_images import effective, parse

TILTFILE = ROOT / "Tiltfile"


@dataclass
class Tilt:
    builds: dict[str, dict[str, Any]] = field(default_factory=dict)
    charts: list[dict[str, Any]] = field(default_factory=list)
    yaml_files: list[str] = field(default_factory=list)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    local: dict[str, dict[str, Any]] = field(default_factory=dict)
    extensions: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def api(self) -> dict[str, Any]:
        def docker_build(ref: str, context: str, **kwargs: Any) -> None:
            assert ref not in self.builds, f"{ref} built twice"
            self.builds[ref] = {"context": context, **kwargs}

        def load(extension: str, *names: str) -> None:
            self.extensions.append((extension, names))
            for name in names:
                namespace[name] = {
                    "namespace_create": lambda name, **_: None,
                    "docker_build_with_restart": docker_build,
                }[name]

        def helm(path: str, **kwargs: Any) -> str:
            self.charts.append({"path": path, **kwargs})
            return f"helm:{path}"

        def k8s_yaml(source: str) -> None:
            if not source.startswith("helm:"):
                self.yaml_files.append(source)

        def k8s_resource(workload: str, **kwargs: Any) -> None:
            self.resources[workload] = kwargs

        def local_resource(name: str, **kwargs: Any) -> None:
            self.local[name] = kwargs

        namespace: dict[str, Any] = {
            "allow_k8s_contexts": lambda *_: None,
            "load": load,
            "docker_build": docker_build,
            "helm": helm,
            "k8s_yaml": k8s_yaml,
            "k8s_resource": k8s_resource,
            "local_resource": local_resource,
            "sync": lambda src, dest: ("sync", src, dest),
            "fall_back_on": lambda paths: ("fall_back_on", paths),
            "run": lambda cmd, **kwargs: ("run", cmd, kwargs),
            "TRIGGER_MODE_MANUAL": "manual",
        }
        return namespace


@pytest.fixture(scope="module")
def tilt() -> Tilt:
    recorder = Tilt()
    exec(compile(TILTFILE.read_text(), str(TILTFILE), "exec"), recorder.api())
    return recorder


def test_extensions_are_tilt_community_ones(tilt: Tilt) -> None:
    assert dict(tilt.extensions) == {
        "ext://namespace": ("namespace_create",),
        "ext://restart_process": ("docker_build_with_restart",),
    }


def test_images_are_the_chart_images_and_dockerfile_targets(tilt: Tilt) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    _, stages = parse()
    assert set(tilt.builds) == {values[c]["image"]["repository"] for c in
                                ("operator", "hermes", "editor", "gateway")} | {
        values["dev"]["messagesApi"]["image"]["repository"]}
    for ref, build in tilt.builds.items():
        assert (ROOT / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).is_file()
        assert build["target"] in stages, ref
        for path in build["only"]:
            assert (ROOT / path).exists(), f"{ref}: only={path} does not exist"
        if "entrypoint" in build:
            assert effective(stages, build["target"], "ENTRYPOINT") == str(
                build["entrypoint"]).replace("'", '"')
        for arg in build.get("build_args", {}):
            assert re.search(rf"^ARG {arg}=", (ROOT / build["dockerfile"]).read_text(), re.M), arg
    assert tilt.builds["webordinary/editor"]["match_in_env_vars"] is True, (
        "the editor image reaches editor pods only through the operator's env")


def test_live_update_syncs_existing_sources_into_the_installed_package(tilt: Tilt) -> None:
    args, _ = parse()
    python = re.match(r"python:(3\.\d+)\.", args["PYTHON_IMAGE"])
    assert python
    for ref, build in tilt.builds.items():
        steps = build.get("live_update", [])
        if ref in ("webordinary/editor", "webordinary/devkit"):
            assert not steps
            continue
        syncs = [s for s in steps if s[0] == "sync"]
        assert syncs, ref
        for _, src, dest in syncs:
            assert (ROOT / src).is_dir(), src
            component = src.split("/")[0]
            assert dest == (f"/opt/webordinary/lib/python{python[1]}/site-packages/"
                            f"webordinary/{component}")
        assert build["build_args"]["APP_OWNER"] == "10001"


def test_chart_install_and_resources_match_the_rendered_chart(tilt: Tilt) -> None:
    (chart,) = tilt.charts
    assert (ROOT / chart["path"]).resolve() == CHART
    assert tilt.yaml_files == [], "the chart brings its own CRD (crds/)"
    values: dict[str, Any] = {}
    for path in chart["values"]:
        assert (ROOT / path).is_file(), path
        values.update(yaml.safe_load((ROOT / path).read_text()))
    assert values["securityContext"]["readOnlyRootFilesystem"] is False, "live update writes"
    rendered = render(values, name=chart["name"], namespace=chart["namespace"])
    for workload, options in tilt.resources.items():
        deployment = rendered.get("Deployment", workload)
        ports = {p["containerPort"] for c in deployment["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports", [])}
        for forward in options.get("port_forwards", []):
            remote = int(forward.split(":")[-1])
            assert remote in ports, f"{workload}: port-forward to {remote}, pod has {ports}"
        for dep in options.get("resource_deps", []):
            assert dep in tilt.resources, dep
    rendered_names = {d["metadata"]["name"] for d in rendered.all("Deployment")}
    assert set(tilt.resources) == rendered_names, "every Deployment is a named Tilt resource"


def test_previews_are_forwarded_through_the_gateway(tilt: Tilt) -> None:
    values = yaml.safe_load((CHART / "ci" / "kind-values.yaml").read_text())
    forwards = tilt.resources["webordinary-gateway"]["port_forwards"]
    local = urlparse(values["preview"]["baseUrl"]).port
    assert f"{local}:{values['gateway']['port']}" in forwards

"""Pure parts of the split pod: customer code's env, error-page paths, the local kubelet's
container plans."""

from __future__ import annotations

from pathlib import Path

from webordinary.devkit import containers
from webordinary.editor.previews.devconfig import dev_config, dev_env
from webordinary.editor.previews.scrub import scrub_paths
from webordinary.editor.supervisor.tasks import customer_env


def test_customer_code_gets_an_allowlisted_env_only(tmp_path: Path) -> None:
    parent = {"PATH": "/usr/bin", "ANTHROPIC_API_KEY": "sk", "WEBORDINARY_GIT_TOKEN": "t",
              "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/x", "KUBERNETES_SERVICE_HOST": "10.0.0.1",
              "SOMETHING": "else"}
    for env in (customer_env(parent, tmp_path), dev_env(parent, tmp_path)):
        assert env["PATH"] == "/usr/bin"
        assert env["HOME"] == str(tmp_path)
        assert not {"ANTHROPIC_API_KEY", "WEBORDINARY_GIT_TOKEN", "SOMETHING",
                    "AWS_WEB_IDENTITY_TOKEN_FILE", "KUBERNETES_SERVICE_HOST"} & set(env)


def test_dev_servers_serve_only_the_worktree_and_node_modules(tmp_path: Path) -> None:
    doc = dev_config(thread_id="a", worktree=tmp_path / "sessions" / "thread-a",
                     state=tmp_path / "state", port=1, allowed_hosts=["preview.example.com"])
    roots = [str(tmp_path / "sessions" / "thread-a"), str(tmp_path / "sessions" / "node_modules")]
    assert doc["serveRoots"] == roots
    assert doc["inline"]["vite"]["server"]["fs"] == {"strict": True, "allow": roots}
    assert doc["inline"]["server"]["allowedHosts"] == ["preview.example.com"]


def test_error_pages_lose_absolute_paths() -> None:
    text = ("Error in /ws/sessions/thread-abc/src/pages/leak.astro:3 via "
            "/ws/sessions/node_modules/astro/dist/core.js, /usr/lib/node_modules/npm/x.js "
            "and /etc/passwd; see https://docs.astro.build/en/a/b and /session/abc/leak")
    scrubbed = scrub_paths(text, Path("/ws/sessions"))
    assert "src/pages/leak.astro:3" in scrubbed
    assert "node_modules/astro/dist/core.js" in scrubbed
    assert "/ws/" not in scrubbed
    assert "/etc/" not in scrubbed
    assert "/usr/" not in scrubbed
    assert "https://docs.astro.build/en/a/b" in scrubbed
    assert "/session/abc/leak" in scrubbed


def test_local_env_values_follow_the_pod_mounts_and_ports(tmp_path: Path) -> None:
    mounts = {"/workspace": tmp_path / "pvc", "/workspace/sessions": tmp_path / "pvc" / "s",
              "/tmp": tmp_path / "tmp"}
    ports = {4322: 50001, 8099: 50002}
    assert containers.rewrite("/workspace/sessions", mounts, ports) == str(tmp_path / "pvc" / "s")
    assert containers.rewrite("/workspace/x", mounts, ports) == str(tmp_path / "pvc" / "x")
    assert containers.rewrite("/workspacex", mounts, ports) == "/workspacex"
    assert containers.rewrite("http://127.0.0.1:4322", mounts, ports) == "http://127.0.0.1:50001"
    assert containers.rewrite("8099", mounts, ports) == "50002"
    assert containers.rewrite("18099", mounts, ports) == "18099"


def test_pods_get_distinct_uid_ranges() -> None:
    a, b = containers.uid_offset("ns/a-editor"), containers.uid_offset("ns/b-editor")
    assert a != b
    assert a % containers.UID_STRIDE == 0
    assert containers.uid_offset("ns/a-editor") == a


def test_links_out_of_the_site_are_named(tmp_path: Path) -> None:
    from webordinary.editor.previews.links import escaping_links

    site = tmp_path / "thread-a"
    (site / "public" / "img").mkdir(parents=True)
    (site / "src").mkdir()
    (site / "public" / "ok.txt").write_text("ok")
    (site / "public" / "inside").symlink_to("../src")
    (site / "public" / "img" / "passwd").symlink_to("/etc/passwd")
    (site / "public" / "up").symlink_to("../..")
    (site / "public" / "dangling").symlink_to("/nonexistent/x")
    assert escaping_links(site) == ["public/dangling", "public/img/passwd", "public/up"]
    assert escaping_links(tmp_path / "missing") == []

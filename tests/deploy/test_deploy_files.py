"""deploy/ files parse, have the parts DESIGN.md §7 names, and set only variables we read.

"Read" means: the project's configuration code asks for the name. The names come from a scan of
explorer/ and workers/ for `env_*("NAME", ...)` reader calls (each also accepts `NAME_FILE`,
explorer/env.py) and for `os.environ.get("NAME")` / `os.getenv("NAME")`. A variable set in a
deploy file that nothing reads is a typo or a dead setting, and fails here.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILES = sorted(p for p in DEPLOY.glob("Dockerfile.*") if p.suffix != ".dockerignore")
K8S_FILES = sorted((DEPLOY / "k8s").glob("*.yaml"))

# explorer/env.py readers: each also accepts NAME_FILE (a path to a file holding the value).
ENV_READERS = {"env_raw", "env_str", "env_bool", "env_int", "env_float", "env_list"}


def _string_arg(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def _is_os_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def env_names_read_by_code() -> set[str]:
    """Every environment variable name the project's Python code reads (outside tests)."""
    names: set[str] = set()
    for path in [*(ROOT / "explorer").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = _string_arg(node)
                if name is None:
                    continue
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if called in ENV_READERS:
                    names.update({name, f"{name}_FILE"})
                elif called == "getenv" or (
                    called in {"get", "setdefault"}
                    and isinstance(func, ast.Attribute)
                    and _is_os_environ(func.value)
                ):
                    names.add(name)
            elif (
                isinstance(node, ast.Subscript)
                and _is_os_environ(node.value)
                and isinstance(node.slice, ast.Constant)
                and isinstance(node.slice.value, str)
            ):
                names.add(node.slice.value)
    return names


READ = env_names_read_by_code()


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def our_services(compose: dict) -> dict[str, dict]:
    """Services built from our Dockerfiles (third-party images have their own variables)."""
    return {name: s for name, s in compose["services"].items() if "build" in s}


def environment_names(environment: dict | list | None) -> set[str]:
    if environment is None:
        return set()
    if isinstance(environment, dict):
        return set(environment)
    return {item.split("=", 1)[0] for item in environment}


def k8s_documents() -> list[dict]:
    return [doc for path in K8S_FILES for doc in yaml.safe_load_all(path.read_text()) if doc]


def pod_specs(docs: list[dict]) -> list[dict]:
    specs = []
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            specs.append(doc["spec"]["template"]["spec"])
    return specs


def k8s_env_names(docs: list[dict]) -> set[str]:
    """Names set on containers: `env` entries plus every key of a ConfigMap/Secret in `envFrom`."""
    by_ref = {(doc["kind"], doc.get("metadata", {}).get("name")): doc for doc in docs}
    names: set[str] = set()
    for spec in pod_specs(docs):
        for container in spec["containers"]:
            names |= {item["name"] for item in container.get("env", [])}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    ref = by_ref[("ConfigMap", source["configMapRef"]["name"])]
                    names |= set(ref.get("data", {}))
                if "secretRef" in source:
                    ref = by_ref[("Secret", source["secretRef"]["name"])]
                    names |= set(ref.get("stringData", {})) | set(ref.get("data", {}))
    return names


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def dockerfile_env_names(path: Path) -> set[str]:
    names: set[str] = set()
    for keyword, rest in dockerfile_instructions(path):
        if keyword == "ENV":
            if "=" in rest.split()[0]:
                names |= {item.split("=", 1)[0] for item in rest.split()}
            else:
                names.add(rest.split()[0])  # legacy `ENV NAME value`
    return names


# --- the scan itself ------------------------------------------------------------------------


def test_the_scan_finds_the_core_settings_variables():
    core = {
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "DEBUG",
        "CSRF_TRUSTED_ORIGINS",
    }
    assert core <= READ
    assert "SECRET_KEY_FILE" in READ


# --- docker compose -------------------------------------------------------------------------


def test_compose_file_parses_with_every_service():
    services = load_compose()["services"]
    expected = {"postgres", "redis", "web", "worker-cpu", "worker-gpu", "worker-index", "flower"}
    assert expected <= set(services)


def test_compose_postgres_has_pgvector():
    assert load_compose()["services"]["postgres"]["image"] == "pgvector/pgvector:pg17"


def test_compose_web_serves_the_asgi_application():
    web = load_compose()["services"]["web"]
    assert web["build"]["dockerfile"] == "deploy/Dockerfile.web"
    cmd = next(
        rest for kw, rest in dockerfile_instructions(DEPLOY / "Dockerfile.web") if kw == "CMD"
    )
    assert "explorer.asgi:application" in cmd


def test_the_web_image_reads_request_heads_as_long_as_the_embedded_server_does():
    """A long ?text= reaches the app, which says what is too long, in both (supervisor.py)."""
    from explorer.core.supervisor import MAX_REQUEST_HEAD_BYTES, web_server_argv

    cmd = json.loads(
        next(rest for kw, rest in dockerfile_instructions(DEPLOY / "Dockerfile.web") if kw == "CMD")
    )
    embedded = web_server_argv(host="127.0.0.1", port=8000)
    for argv in (cmd, embedded):
        assert argv[argv.index("--http") + 1] == "h11"
        limit = argv[argv.index("--h11-max-incomplete-event-size") + 1]
        assert int(limit) == MAX_REQUEST_HEAD_BYTES >= 3 << 20  # 1 MB of text, percent-encoded


def test_the_web_image_believes_forwarded_addresses_only_from_trusted_proxies():
    """uvicorn keeps the TCP peer (the application resolves X-Forwarded-For through
    TRUSTED_PROXIES), and the stack trusts its own network, not everyone."""
    cmd = next(
        rest for kw, rest in dockerfile_instructions(DEPLOY / "Dockerfile.web") if kw == "CMD"
    )
    assert "--no-proxy-headers" in cmd and "--forwarded-allow-ips" not in cmd
    compose = load_compose()
    trusted = compose["services"]["web"]["environment"]["TRUSTED_PROXIES"]
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert trusted.endswith(f":-{subnet}}}") and "*" not in trusted
    config = next(d for d in k8s_documents() if d.get("kind") == "ConfigMap")
    assert config["data"]["TRUSTED_PROXIES"] and "*" not in config["data"]["TRUSTED_PROXIES"]


def test_compose_gpu_worker_reserves_an_nvidia_gpu_and_serves_a_live_queue():
    worker = load_compose()["services"]["worker-gpu"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]
    queues = next(arg for arg in worker["command"] if arg.startswith("--queues="))
    assert re.fullmatch(r"--queues=live\.\S+", queues)


def test_compose_batch_queues_run_on_workers_without_live_queues():
    worker = load_compose()["services"]["worker-index"]
    queues = next(arg for arg in worker["command"] if arg.startswith("--queues="))
    assert "index" in queues.split("=", 1)[1].split(",")
    assert "live." not in queues


def test_compose_workers_are_built_from_the_worker_image():
    services = load_compose()["services"]
    for name in ("worker-cpu", "worker-gpu", "worker-index"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile.worker"


def test_compose_sets_only_variables_the_settings_read():
    unknown = {
        name: sorted(environment_names(service.get("environment")) - READ)
        for name, service in our_services(load_compose()).items()
    }
    assert {name: names for name, names in unknown.items() if names} == {}


# --- Dockerfiles ----------------------------------------------------------------------------


def test_there_are_web_and_worker_dockerfiles():
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.web", "Dockerfile.worker"]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_has_from_and_cmd(path):
    keywords = [kw for kw, _ in dockerfile_instructions(path)]
    assert keywords[0] in {"FROM", "ARG"}
    assert "FROM" in keywords
    assert "CMD" in keywords


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_sets_only_variables_the_settings_read(path):
    assert sorted(dockerfile_env_names(path) - READ) == []


def test_web_image_does_not_install_torch():
    """The web process never imports torch (DESIGN.md §2): its image does not even carry it."""
    runs = " ".join(
        rest for kw, rest in dockerfile_instructions(DEPLOY / "Dockerfile.web") if kw == "RUN"
    )
    assert "torch" not in runs
    assert "[worker]" not in runs


def test_worker_image_installs_the_worker_extra():
    runs = " ".join(
        rest for kw, rest in dockerfile_instructions(DEPLOY / "Dockerfile.worker") if kw == "RUN"
    )
    assert ".[worker]" in runs


# --- Kubernetes -----------------------------------------------------------------------------


def test_every_k8s_document_is_a_kubernetes_object():
    docs = k8s_documents()
    assert docs
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), doc


def test_kustomization_lists_only_existing_files():
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (DEPLOY / "k8s" / resource).is_file(), resource


def test_k8s_web_has_a_deployment_and_a_service_selecting_it():
    docs = k8s_documents()
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-web")
    )
    service = next(d for d in docs if d["kind"] == "Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_k8s_live_gpu_worker_limits_one_nvidia_gpu_per_pod():
    docs = k8s_documents()
    live = [
        d
        for d in docs
        if d["kind"] == "Deployment"
        and any(
            "--queues=live." in arg
            for arg in d["spec"]["template"]["spec"]["containers"][0].get("command", [])
        )
    ]
    assert live
    for deployment in live:
        limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == 1


def test_k8s_sets_only_variables_the_settings_read():
    assert sorted(k8s_env_names(k8s_documents()) - READ) == []


def test_k8s_secret_and_configmap_carry_the_required_settings():
    names = k8s_env_names(k8s_documents())
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS"} <= names


# --- documentation --------------------------------------------------------------------------


def all_deploy_env_names() -> set[str]:
    names = k8s_env_names(k8s_documents())
    for service in our_services(load_compose()).values():
        names |= environment_names(service.get("environment"))
    for path in DOCKERFILES:
        names |= dockerfile_env_names(path)
    return names


def test_every_variable_the_deploy_files_set_is_documented():
    """docs/configuration.md lists each variable (NAME_FILE is covered by NAME's entry)."""
    documented = set(
        re.findall(r"`([A-Z][A-Z0-9_]+)`", (ROOT / "docs" / "configuration.md").read_text())
    )
    used = {name.removesuffix("_FILE") for name in all_deploy_env_names()}
    assert sorted(used - documented) == []

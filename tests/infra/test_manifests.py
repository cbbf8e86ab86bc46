"""The Kubernetes manifests and the Prefect work-pool template under infra/kubernetes.

Every manifest goes through the real ``kubernetes-validate`` in ``--strict`` mode (unknown fields
rejected) against a pinned Kubernetes version, offline: the tool bundles its schemas.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "infra" / "kubernetes"
KUBERNETES_VERSION = "1.32.0"
WORK_POOL = KUBE / "prefect" / "work-pool.json"
MANIFESTS = sorted(p for p in KUBE.rglob("*.yaml") if p.name != "kustomization.yaml")
# Keys Prefect's Kubernetes worker requires in the pod spec (its base-manifest check); the API
# server drops them with a warning, strict schema validation would reject them.
PREFECT_POD_SPEC_KEYS = ("parallelism", "completions")


def _validator() -> str:
    found = shutil.which("kubernetes-validate", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("kubernetes-validate is not installed: pip install -e '.[dev]'")
    return found


def validate_manifests(*paths: Path) -> list[str]:
    """Problems kubernetes-validate --strict reports (errors and unknown kinds); [] when valid."""
    completed = subprocess.run(
        [_validator(), "--strict", "-k", KUBERNETES_VERSION, *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = (completed.stdout + completed.stderr).splitlines()
    problems = [line for line in lines if line and not line.startswith("INFO ")]
    if completed.returncode != 0 and not problems:
        problems.append(f"kubernetes-validate exited {completed.returncode}")
    return problems


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _find(kind: str, name: str) -> dict[str, Any]:
    for path in MANIFESTS:
        for doc in _docs(path):
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
    raise AssertionError(f"no {kind} named {name} under {KUBE}")


def _render(template: dict[str, Any]) -> dict[str, Any]:
    """The work pool's Job as the worker would submit it, defaults filled in."""
    from prefect.utilities.templating import apply_values

    variables = template["variables"]["properties"]
    values: dict[str, Any] = {k: v["default"] for k, v in variables.items() if "default" in v}
    values |= {"name": "retrain-run", "labels": {"prefect.io/flow-run-id": "0"}}
    values |= {"command": "prefect flow-run execute"}
    manifest: dict[str, Any] = apply_values(template["job_configuration"]["job_manifest"], values)
    manifest["spec"]["template"]["spec"]["containers"][0]["args"] = values["command"].split()
    manifest["metadata"]["name"] = manifest["metadata"].pop("generateName") + "x"
    pod_spec = manifest["spec"]["template"]["spec"]
    for key in PREFECT_POD_SPEC_KEYS:
        pod_spec.pop(key)
    return manifest


def test_there_are_manifests() -> None:
    names = {p.relative_to(KUBE).as_posix() for p in MANIFESTS}
    assert {"serving/bento.yaml", "base/postgres.yaml", "prefect/worker.yaml"} <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.relative_to(KUBE).as_posix())
def test_manifest_is_valid_in_strict_mode(path: Path) -> None:
    assert validate_manifests(path) == []


def test_validation_rejects_a_broken_manifest(tmp_path: Path) -> None:
    deployment = _find("Deployment", "conveyor-bento")
    deployment["spec"]["template"]["spec"]["containers"][0]["replicas"] = 3  # misplaced
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    problems = validate_manifests(broken)
    assert problems and "replicas" in problems[0]


def test_validation_rejects_an_unknown_kind(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("apiVersion: v1\nkind: Deploymnet\nmetadata: {name: x}\n")
    assert validate_manifests(unknown) != []


def test_kustomization_lists_existing_files() -> None:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (KUBE / resource).is_file(), resource


def test_work_pool_template_has_the_shape_prefect_expects() -> None:
    template = json.loads(WORK_POOL.read_text())
    assert set(template) == {"job_configuration", "variables"}
    config, variables = template["job_configuration"], template["variables"]
    assert variables["type"] == "object"
    placeholders = set(re.findall(r"{{\s*(\w+)\s*}}", json.dumps(config)))
    assert placeholders <= set(variables["properties"]), placeholders - set(variables["properties"])
    for key in ("command", "env", "labels", "name", "namespace", "job_manifest"):
        assert key in config
    pod = config["job_manifest"]["spec"]["template"]["spec"]
    # What prefect-kubernetes' worker checks before it creates a Job.
    assert (pod["parallelism"], pod["completions"], pod["restartPolicy"]) == (1, 1, "Never")
    assert pod["containers"][0]["name"] == "prefect-job"


def test_work_pool_job_trains_on_gpus_with_shared_checkpoints() -> None:
    job = _render(json.loads(WORK_POOL.read_text()))
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = {e["name"]: e for e in container["env"]}
    assert env["CONVEYOR_DB_URL"]["valueFrom"]["secretKeyRef"]["name"] == "conveyor-db"
    assert env["CONVEYOR_HOME"]["value"].startswith("/shared/")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/shared", "/etc/conveyor/deepspeed"} <= mounts


def test_rendered_work_pool_job_is_valid_in_strict_mode(tmp_path: Path) -> None:
    rendered = tmp_path / "work-pool-job.yaml"
    rendered.write_text(yaml.safe_dump(_render(json.loads(WORK_POOL.read_text()))))
    assert validate_manifests(rendered) == []


def test_multinode_job_uses_the_launcher_and_existing_deepspeed_configs() -> None:
    job = _find("Job", "conveyor-train")
    assert job["spec"]["completionMode"] == "Indexed"
    script = " ".join(job["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "deepspeed.launcher.runner" in script and "--no_ssh" in script
    ds_config = re.search(r"--ds-config (\S+)", script)
    assert ds_config and (ROOT / ds_config.group(1)).is_file()


def test_bento_rolls_out_without_losing_capacity() -> None:
    deployment = _find("Deployment", "conveyor-bento")
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    pdb = _find("PodDisruptionBudget", "conveyor-bento")
    assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_no_secret_values_are_committed() -> None:
    for path in MANIFESTS:
        for doc in _docs(path):
            if doc["kind"] != "Secret":
                continue
            assert "data" not in doc, f"{path}: placeholders go in stringData"
            for key, value in doc["stringData"].items():
                if "PASSWORD" in key or "@" in value:  # a password, or a URL with credentials
                    assert "REPLACE_ME" in value, f"{path}: {key}"


def test_redis_keeps_limits_behind_a_password_and_a_network_policy() -> None:
    redis = _find("Deployment", "conveyor-redis")["spec"]["template"]["spec"]["containers"][0]
    args = redis["args"]
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction", "limits are never evicted"
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert redis["env"][0]["valueFrom"]["secretKeyRef"] == {
        "name": "conveyor-redis",
        "key": "password",
    }
    policy = _find("NetworkPolicy", "conveyor-redis")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "redis"
    sources = [rule["podSelector"]["matchLabels"] for rule in policy["spec"]["ingress"][0]["from"]]
    bento = _find("Deployment", "conveyor-bento")
    assert sources == [bento["spec"]["template"]["metadata"]["labels"]]
    env = {e["name"]: e for e in bento["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CONVEYOR_CACHE_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "conveyor-serving"

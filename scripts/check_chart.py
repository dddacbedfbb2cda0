#!/usr/bin/env python3
"""Checks the Helm chart in charts/aether without a cluster or a helm binary.

1. Every variable that aether-server's configuration reads is a key of the chart's `config` or
   `secrets` values, of values.schema.json, and of the chart's README (so neither drifts from
   the code).
2. `helm lint --strict` (Helm v4 through helm-python-sdk) reports no warning or error, with the
   default values and with each value set below.
3. The chart renders with each value set; every object validates against the Kubernetes OpenAPI
   schemas (kubernetes-validate, strict: unknown fields are errors) of Kubernetes 1.30 and of
   every newer version the package ships. Custom resources (ServiceMonitor) have no such schema
   and are skipped; nothing else is.
4. References between the rendered objects hold (selectors, ConfigMap, Secret, ServiceAccount,
   Role), and each value set does what it is for (checked by the `expect_*` functions).
5. Value combinations the chart must refuse fail to render.

Prints one line on success; every problem otherwise, and exits 1.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import yaml
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "aether"
CONFIG_SOURCES = ROOT / "aether-server" / "src" / "config"
RELEASE, NAMESPACE = "aether", "aether-system"
OLDEST_KUBERNETES = Version("1.30")
# Kinds defined by CustomResourceDefinitions: the Kubernetes schemas do not describe them.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
SECRET_KEYS = ["DATABASE_URL", "AETHER_API_TOKENS", "AETHER_API_TOKEN", "AWS_ACCESS_KEY_ID",
               "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]

Objects = list[dict[str, Any]]


class Problems(list[str]):
    def check(self, condition: bool, message: str) -> None:
        if not condition:
            self.append(message)


def find(objects: Objects, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: Objects, kind: str) -> dict[str, Any]:
    found = find(objects, kind)
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}, found {len(found)}")
    return found[0]


def container(objects: Objects) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "aether-server")


def secret_verbs(objects: Objects) -> set[str]:
    rules = one(objects, "Role")["rules"]
    return {v for r in rules if "secrets" in r["resources"] for v in r["verbs"]}


# --- What each value set is for -------------------------------------------------------------

def expect_defaults(objects: Objects, p: Problems) -> None:
    deployment = one(objects, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    server = container(objects)
    config = one(objects, "ConfigMap")["data"]
    p.check(spec["replicas"] == 2, "two replicas by default")
    p.check(spec["strategy"]["type"] == "RollingUpdate", "rolling updates by default")
    p.check("preferredDuringSchedulingIgnoredDuringExecution" in pod["affinity"]["podAntiAffinity"],
            "a preferred pod anti-affinity by default")
    p.check(bool(find(objects, "PodDisruptionBudget")), "a PodDisruptionBudget by default")
    p.check(pod["securityContext"].get("runAsNonRoot") is True, "pods run as non-root")
    p.check(server["securityContext"].get("readOnlyRootFilesystem") is True, "read-only root filesystem")
    p.check(server["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness probe on /healthz")
    p.check(server["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness probe on /readyz")
    p.check("limits" in server["resources"] and "requests" in server["resources"], "resources are set")
    annotations = spec["template"]["metadata"]["annotations"]
    p.check(annotations.get("prometheus.io/path") == "/metrics", "/metrics scrape annotations by default")
    p.check(config.get("AETHER_LISTEN") == "0.0.0.0:8080", "listens on 0.0.0.0:8080")
    p.check(config.get("AETHER_RUNTIME") == "kubernetes", "runtime defaults to kubernetes")
    p.check(config.get("AETHER_STORAGE_MODE") == "s3", "storage defaults to s3")
    p.check(config.get("AETHER_FETCHER_IMAGE") == server["image"], "the fetcher image is the server's own")
    p.check(config.get("AETHER_MAX_ARTIFACT_SIZE_BYTES") == "2147483648", "large numbers are written out in full")
    p.check(one(objects, "Role")["metadata"]["namespace"] == config.get("AETHER_DEFAULT_NAMESPACE") == "aether",
            "the Role is in the apps' namespace")
    p.check(not {"get", "list", "watch"} & secret_verbs(objects), "secrets are not readable by default")
    p.check(not find(objects, "Secret"), "no Secret when no secret value is set")
    p.check(pod["automountServiceAccountToken"] is True, "the Kubernetes runtime gets in-cluster credentials")


def expect_secrets(objects: Objects, p: Problems) -> None:
    secret = one(objects, "Secret")
    p.check(set(secret["stringData"]) == set(SECRET_KEYS), f"every secret value lands in the Secret: {sorted(secret['stringData'])}")
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container(objects).get("env", []) if "valueFrom" in e}
    p.check(refs == {k: secret["metadata"]["name"] for k in SECRET_KEYS}, f"the container reads each secret key: {refs}")
    config = one(objects, "ConfigMap")["data"]
    p.check(config.get("AETHER_S3_SSE") == "aws:kms" and config.get("AETHER_S3_SSE_KMS_KEY") == "alias/aether",
            "SSE settings reach the ConfigMap")


def expect_existing_secret(objects: Objects, p: Problems) -> None:
    p.check(not find(objects, "Secret"), "no Secret is rendered with existingSecret")
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(objects).get("env", []) if "valueFrom" in e}
    p.check(set(refs) == set(SECRET_KEYS), f"every documented key is read from the existing Secret: {sorted(refs)}")
    p.check(all(r["name"] == "aether-credentials" and r.get("optional") is True for r in refs.values()),
            "existing Secret keys are optional references to it")


def expect_allow_secrets(objects: Objects, p: Problems) -> None:
    p.check({"get", "list", "watch"} <= secret_verbs(objects), "rbac.allowSecrets lets the server read secrets")


def expect_service_monitor(objects: Objects, p: Problems) -> None:
    monitor = one(objects, "ServiceMonitor")
    endpoint = monitor["spec"]["endpoints"][0]
    p.check(endpoint["path"] == "/metrics" and endpoint["port"] == "api", "the ServiceMonitor scrapes /metrics")
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    p.check("prometheus.io/scrape" not in annotations, "no scrape annotations beside a ServiceMonitor")
    account = one(objects, "ServiceAccount")
    p.check("eks.amazonaws.com/role-arn" in account["metadata"].get("annotations", {}), "IRSA annotation on the ServiceAccount")


def expect_tls(objects: Objects, p: Problems) -> None:
    server = container(objects)
    config = one(objects, "ConfigMap")["data"]
    mounts = {m["name"]: m["mountPath"] for m in server["volumeMounts"]}
    p.check(config.get("AETHER_TLS_CERT", "").startswith(mounts.get("tls", "?")), "AETHER_TLS_CERT is in the TLS mount")
    p.check(config.get("AETHER_TLS_KEY", "").startswith(mounts.get("tls", "?")), "AETHER_TLS_KEY is in the TLS mount")
    p.check(all(server[probe]["httpGet"]["scheme"] == "HTTPS" for probe in ("livenessProbe", "readinessProbe")),
            "probes speak HTTPS")
    p.check(config.get("AETHER_PUBLIC_URL") == "https://aether.example.test", "the public URL is the ingress host")
    p.check(any(n["metadata"]["name"] == "apps" for n in find(objects, "Namespace")), "the apps' namespace is created")
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    p.check("requiredDuringSchedulingIgnoredDuringExecution" in pod["affinity"]["podAntiAffinity"], "required anti-affinity")


def expect_local_storage(objects: Objects, p: Problems) -> None:
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    config = one(objects, "ConfigMap")["data"]
    p.check(config.get("AETHER_STORAGE_MODE") == "local", "local storage")
    p.check(deployment["spec"]["strategy"]["type"] == "Recreate", "a ReadWriteOnce volume is replaced, not surged")
    claim = one(objects, "PersistentVolumeClaim")["metadata"]["name"]
    p.check(any(v.get("persistentVolumeClaim", {}).get("claimName") == claim for v in pod["volumes"]), "the data dir is the claim")
    p.check(not find(objects, "Role") and pod["automountServiceAccountToken"] is False,
            "no Kubernetes access without the Kubernetes runtime")


VALUE_SETS: dict[str, tuple[dict[str, Any], Callable[[Objects, Problems], None]]] = {
    "defaults": ({}, expect_defaults),
    "secrets": ({
        "secrets": {
            "DATABASE_URL": "postgres://aether:pw@postgres:5432/aether",
            "AETHER_API_TOKENS": "t1:admin:ops,t2:deployer:ci",
            "AETHER_API_TOKEN": "t0",
            "AWS_ACCESS_KEY_ID": "ak",
            "AWS_SECRET_ACCESS_KEY": "sk",
            "AWS_SESSION_TOKEN": "st",
        },
        "config": {"AETHER_S3_ENDPOINT_URL": "http://minio.minio.svc:9000", "AWS_REGION": "eu-west-1",
                   "AETHER_S3_SSE": "aws:kms", "AETHER_S3_SSE_KMS_KEY": "alias/aether",
                   "AETHER_MAX_ARTIFACTS_PER_APP": 100, "AETHER_K8S_STRATEGY": "rolling"},
    }, expect_secrets),
    "existingSecret": ({"existingSecret": "aether-credentials"}, expect_existing_secret),
    "rbac.allowSecrets": ({"rbac": {"allowSecrets": True}}, expect_allow_secrets),
    "serviceMonitor": ({
        "metrics": {"scrapeAnnotations": False, "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/aether"}},
    }, expect_service_monitor),
    "tls": ({
        "tls": {"enabled": True, "secretName": "aether-tls"},
        "ingress": {"enabled": True, "className": "nginx", "host": "aether.example.test", "tlsSecretName": "aether-ingress-tls"},
        "config": {"AETHER_DEFAULT_NAMESPACE": "apps"},
        "appsNamespace": {"create": True},
        "podAntiAffinity": "required",
        "podDisruptionBudget": {"minAvailable": 1},
    }, expect_tls),
    "local storage": ({
        "replicaCount": 1,
        "persistence": {"enabled": True, "storageClass": "standard"},
        "config": {"AETHER_STORAGE_MODE": "local", "AETHER_RUNTIME": "none"},
    }, expect_local_storage),
}

# Values the chart must refuse, and a piece of the message it refuses them with.
REFUSED = [
    ({"config": {"AETHER_STORAGE_MODE": "local"}}, "AETHER_STORAGE_MODE=local"),
    ({"replicaCount": 2, "persistence": {"enabled": True}}, "ReadWriteOnce"),
    ({"tls": {"enabled": True}}, "tls.secretName"),
    ({"config": {"AETHER_TLS_CERT": "/c.pem", "AETHER_TLS_KEY": "/k.pem"}}, "tls.enabled"),
    ({"config": {"AETHER_RUNTIM": "kubernetes"}}, "AETHER_RUNTIM"),
    ({"config": {"AETHER_STORAGE_MODE": "gcs"}}, "AETHER_STORAGE_MODE"),
    ({"config": {"AETHER_LISTEN": "0.0.0.0"}}, "AETHER_LISTEN"),
]


# --- Checks ----------------------------------------------------------------------------------

def variables_read_by_the_server() -> set[str]:
    pattern = re.compile(r'"((?:AETHER|AWS)_[A-Z0-9_]+|DATABASE_URL)"')
    return {m for path in CONFIG_SOURCES.rglob("*.rs") for m in pattern.findall(path.read_text())}


def check_variables(p: Problems) -> int:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]
    readme = (CHART / "README.md").read_text()
    in_values = set(values["config"]) | set(values["secrets"])
    in_schema = set(schema["config"]["properties"]) | set(schema["secrets"]["properties"])
    read = variables_read_by_the_server()
    p.check(len(read) > 20, f"found only {len(read)} variables in {CONFIG_SOURCES}")
    for name in sorted(read - in_values):
        p.append(f"{name} is read by aether-server/src/config but missing from charts/aether/values.yaml")
    for name in sorted(in_values ^ in_schema):
        p.append(f"{name} is in only one of values.yaml and values.schema.json")
    table = "\n".join(line for line in readme.splitlines() if line.startswith("|"))
    for name in sorted(in_values):
        p.check(re.search(rf"(?<![A-Z0-9_]){name}(?![A-Z0-9_])", table) is not None,
                f"{name} is not in a table of charts/aether/README.md")
    p.check(set(values["secrets"]) == set(SECRET_KEYS), "the secret keys changed: update SECRET_KEYS here")
    return len(in_values)


def lint(values: dict[str, Any], label: str, p: Problems) -> None:
    for kube_version in (None, f"v{OLDEST_KUBERNETES}.0"):
        report = helm_python.lint(CHART, values, strict=True, kube_version=kube_version)
        for message in report["messages"]:
            # Severity 1 is informational ("icon is recommended"), which --strict accepts too.
            if message["severity"] >= 2:
                p.append(f"lint [{label}] {message['path']}: {message['error'].strip()}")
        for error in report["errors"]:
            p.append(f"lint [{label}] {error.strip()}")


def render(chart: helm_python.Chart, values: dict[str, Any]) -> Objects:
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: Objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(o for o in yaml.safe_load_all(text) if o)
    return objects


def validate_schemas(objects: Objects, versions: list[str], label: str, p: Problems) -> int:
    skipped = 0
    for obj in objects:
        what = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if (obj.get("apiVersion"), obj.get("kind")) in CUSTOM_KINDS:
            skipped += 1
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = ".".join(str(part) for part in error.path)
                p.append(f"[{label}] {what} is invalid for Kubernetes {version}: {where}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                p.append(f"[{label}] {what}: {error.message}")
    return skipped


def check_references(objects: Objects, values: dict[str, Any], label: str, p: Problems) -> None:
    names = {(o["kind"], o["metadata"].get("namespace", NAMESPACE), o["metadata"]["name"]) for o in objects}
    p.check(len(names) == len(objects), f"[{label}] two objects share a kind, namespace and name")
    deployment = one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str]) -> bool:
        return bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items())

    p.check(selects(deployment["spec"]["selector"]["matchLabels"]), f"[{label}] the Deployment selects its pods")
    p.check(selects(one(objects, "Service")["spec"]["selector"]), f"[{label}] the Service selects the pods")
    for budget in find(objects, "PodDisruptionBudget"):
        p.check(selects(budget["spec"]["selector"]["matchLabels"]), f"[{label}] the PodDisruptionBudget selects the pods")
    service = one(objects, "Service")
    for monitor in find(objects, "ServiceMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"]
        p.check(all(service["metadata"]["labels"].get(k) == v for k, v in wanted.items()),
                f"[{label}] the ServiceMonitor selects the Service")
        ports = {port["name"] for port in service["spec"]["ports"]}
        p.check(all(e["port"] in ports for e in monitor["spec"]["endpoints"]), f"[{label}] ServiceMonitor port names a Service port")
    pod = deployment["spec"]["template"]["spec"]
    server = container(objects)
    config_maps = {o["metadata"]["name"] for o in find(objects, "ConfigMap")}
    for source in server.get("envFrom", []):
        p.check(source["configMapRef"]["name"] in config_maps, f"[{label}] envFrom names a rendered ConfigMap")
    secrets = {o["metadata"]["name"]: o["stringData"] for o in find(objects, "Secret")}
    for env in server.get("env", []):
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref["name"] != values.get("existingSecret"):
            p.check(ref["key"] in secrets.get(ref["name"], {}), f"[{label}] {env['name']} names a key of a rendered Secret")
    config = one(objects, "ConfigMap")["data"]
    p.check(not set(config) & set(SECRET_KEYS), f"[{label}] no secret in the ConfigMap")
    p.check(all(isinstance(v, str) and v for v in config.values()), f"[{label}] ConfigMap values are non-empty strings")
    port = int(config["AETHER_LISTEN"].rsplit(":", 1)[1])
    p.check(server["ports"][0]["containerPort"] == port, f"[{label}] the container port is AETHER_LISTEN's")
    accounts = {o["metadata"]["name"] for o in find(objects, "ServiceAccount")}
    p.check(pod["serviceAccountName"] in accounts, f"[{label}] the pod's ServiceAccount is rendered")
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in find(objects, "Role")}
    for binding in find(objects, "RoleBinding"):
        namespace = binding["metadata"]["namespace"]
        p.check((namespace, binding["roleRef"]["name"]) in roles, f"[{label}] the RoleBinding's Role is rendered")
        for subject in binding["subjects"]:
            p.check(subject["name"] in accounts and subject["namespace"] == NAMESPACE,
                    f"[{label}] the RoleBinding names the server's ServiceAccount")
        p.check(namespace == config["AETHER_DEFAULT_NAMESPACE"], f"[{label}] RBAC is in AETHER_DEFAULT_NAMESPACE")


def check_refused(chart: helm_python.Chart, p: Problems) -> None:
    for values, reason in REFUSED:
        try:
            render(chart, copy.deepcopy(values))
        except helm_python.HelmError as error:
            p.check(reason in str(error), f"refusing {values} should mention {reason!r}: {error}")
        else:
            p.append(f"the chart renders {values}, which cannot work")


def main() -> int:
    helm_python.disable_logging()
    p = Problems()
    # all_versions() lists each version twice (its plain and its strict schemas).
    shipped = set(kubernetes_validate.utils.all_versions())
    versions = sorted((v for v in shipped if Version(v) >= OLDEST_KUBERNETES), key=Version)
    variables = check_variables(p)
    count = skipped = 0
    with helm_python.Chart.load(CHART) as chart:
        for label, (values, expect) in VALUE_SETS.items():
            lint(values, label, p)
            try:
                objects = render(chart, copy.deepcopy(values))
            except helm_python.HelmError as error:
                p.append(f"[{label}] does not render: {error}")
                continue
            count += len(objects)
            skipped += validate_schemas(objects, versions, label, p)
            try:
                check_references(objects, values, label, p)
                expect(objects, p)
            except (AssertionError, KeyError, IndexError, StopIteration) as error:
                p.append(f"[{label}] unexpected shape: {type(error).__name__}: {error}")
        check_refused(chart, p)
    if p:
        print(f"charts/aether: {len(p)} problem(s)", file=sys.stderr)
        for problem in p:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"charts/aether: lint --strict clean; {len(VALUE_SETS)} value sets, {count} objects valid against "
          f"Kubernetes {', '.join(versions)} ({skipped} ServiceMonitor not schema-checked: a CRD); "
          f"{len(REFUSED)} bad value sets refused; {variables} variables covered")
    return 0


if __name__ == "__main__":
    sys.exit(main())

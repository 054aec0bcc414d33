"""Checks deploy/kubernetes: every resource against the Kubernetes API
schemas (kubernetes-validate, strict: unknown fields are errors), and the
resources against each other (selectors, port names, mounts, the
kustomization's list). Prints one JSON object: {"errors": [...],
"validated": N, "proxy_toml": TEXT, "mounts": {path: volume}}.

Usage: check_manifests.py DIR [KUBERNETES_VERSION]
"""

import json
import os
import sys

import kubernetes_validate
import yaml


def main():
    root = sys.argv[1]
    version = sys.argv[2] if len(sys.argv) > 2 else "1.31.0"
    errors = []
    docs = {}
    validated = 0
    files = sorted(
        os.path.join(d, f)
        for d, _, fs in os.walk(root)
        for f in fs
        if f.endswith(".yaml")
    )
    for path in files:
        with open(path) as fh:
            for doc in yaml.safe_load_all(fh):
                if not doc:
                    continue
                rel = os.path.relpath(path, root)
                docs.setdefault(doc["kind"], []).append((rel, doc))
                # Kustomize's and the Prometheus Operator's kinds have no
                # schema in the API; they are checked below instead.
                if doc["kind"] in ("Kustomization", "ServiceMonitor"):
                    continue
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                    validated += 1
                except kubernetes_validate.ValidationError as e:
                    errors.append(f"{rel}: {e.message} at {list(e.path)}")
                except Exception as e:  # unknown kind or version
                    errors.append(f"{rel}: {e}")

    def one(kind):
        found = docs.get(kind, [])
        if len(found) != 1:
            errors.append(f"expected one {kind}, found {len(found)}")
            return {}
        return found[0][1]

    deployment = one("Deployment")
    service = one("Service")
    pdb = one("PodDisruptionBudget")
    monitor = one("ServiceMonitor")
    pod = deployment.get("spec", {}).get("template", {})
    labels = pod.get("metadata", {}).get("labels", {})

    def selects(selector, what):
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            errors.append(f"{what} does not select the proxy's pods")

    selects(deployment.get("spec", {}).get("selector", {}).get("matchLabels"), "the Deployment")
    selects(service.get("spec", {}).get("selector"), "the Service")
    selects(pdb.get("spec", {}).get("selector", {}).get("matchLabels"), "the PodDisruptionBudget")
    for rel, policy in docs.get("NetworkPolicy", []):
        if policy["metadata"]["name"] == "clsf-proxy-ingress":
            selects(policy["spec"]["podSelector"].get("matchLabels"), rel)

    container = pod.get("spec", {}).get("containers", [{}])[0]
    port_names = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    for p in service.get("spec", {}).get("ports", []):
        if p.get("targetPort") not in port_names:
            errors.append(f"the Service's port {p['name']} targets no container port")
    for probe in ("readinessProbe", "livenessProbe"):
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("port") != "admin" or get.get("scheme") != "HTTPS":
            errors.append(f"{probe} does not ask the admin listener over HTTPS")
    service_ports = {p["name"] for p in service.get("spec", {}).get("ports", [])}
    for endpoint in monitor.get("spec", {}).get("endpoints", []):
        if endpoint.get("port") not in service_ports:
            errors.append(f"the ServiceMonitor scrapes port {endpoint.get('port')}, which the Service lacks")
    if monitor.get("spec", {}).get("selector", {}).get("matchLabels") != service.get("spec", {}).get("selector"):
        errors.append("the ServiceMonitor's selector is not the Service's")

    # The kustomization lists every manifest of its folder but the
    # database's network policy, which belongs in another namespace.
    for rel, kustomization in docs.get("Kustomization", []):
        folder = os.path.dirname(rel)
        if folder:
            continue
        listed = set(kustomization.get("resources", []))
        present = {f for f in os.listdir(root) if f.endswith(".yaml")}
        expected = present - {"kustomization.yaml", "database-networkpolicy.yaml"}
        if listed != expected:
            errors.append(f"kustomization.yaml lists {sorted(listed)}, the folder has {sorted(expected)}")

    volumes = {v["name"]: v for v in pod.get("spec", {}).get("volumes", [])}
    mounts = {}
    for m in container.get("volumeMounts", []):
        if m["name"] not in volumes:
            errors.append(f"mount {m['mountPath']} names no volume")
        mounts[m["mountPath"]] = m["name"]

    config = one("ConfigMap")
    print(
        json.dumps(
            {
                "errors": errors,
                "validated": validated,
                "proxy_toml": config.get("data", {}).get("proxy.toml", ""),
                "mounts": mounts,
                "args": container.get("args", []),
            }
        )
    )


if __name__ == "__main__":
    main()

//! The Kubernetes packaging in `deploy/kubernetes`: every resource passes
//! the API schemas of Kubernetes 1.29, 1.30 and 1.31 strictly
//! (kubernetes-validate from PyPI), the
//! resources agree with each other (selectors, port names, mounts, the
//! kustomization's list), and the proxy configuration they ship passes
//! `clsf-proxy check-config` once the files its Secrets and ConfigMaps
//! mount are there — and refuses to start while the trusted key is the
//! placeholder.

use std::path::{Path, PathBuf};
use std::process::Command;

use clsf_tests::bins::{bin, repo_root};
use clsf_tests::certs::write_test_ca;
use clsf_tests::identity::Issuer;
use clsf_tests::programs;
use serde_json::Value;

/// The Kubernetes versions whose API schemas the manifests must pass.
const KUBERNETES: &[&str] = &["1.29.0", "1.30.0", "1.31.0"];

fn check(dir: &Path) -> Value {
    check_against(dir, KUBERNETES[KUBERNETES.len() - 1])
}

fn check_against(dir: &Path, version: &str) -> Value {
    let out = programs::python("check_manifests.py")
        .arg(dir)
        .arg(version)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check_manifests.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_kubernetes_manifests_are_valid_and_agree_with_each_other() {
    let dir = repo_root().join("deploy/kubernetes");
    for version in KUBERNETES {
        let report = check_against(&dir, version);
        assert_eq!(
            report["errors"],
            serde_json::json!([]),
            "Kubernetes {version}: {report:#}"
        );
        assert!(report["validated"].as_u64().unwrap() >= 6, "{report:#}");
    }

    // The checks are not vacuous: a misspelt field fails the schema, a
    // renamed container port leaves the Service's target dangling.
    let work = tempfile::tempdir().unwrap();
    let broken = work.path().join("kubernetes");
    copy_dir(&dir, &broken);
    let deployment = std::fs::read_to_string(broken.join("deployment.yaml")).unwrap();
    let deployment = deployment
        .replacen("  replicas: 3", "  replicaz: 3", 1)
        .replacen("- name: postgres\n", "- name: pg\n", 1);
    std::fs::write(broken.join("deployment.yaml"), deployment).unwrap();
    let errors = check(&broken)["errors"].to_string();
    assert!(errors.contains("replicaz"), "{errors}");
    assert!(errors.contains("targets no container port"), "{errors}");
}

/// The path inside the temporary root for an absolute path of the image.
fn inside(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

#[test]
fn the_shipped_proxy_configuration_passes_check_config() {
    let report = check(&repo_root().join("deploy/kubernetes"));
    let toml = report["proxy_toml"].as_str().unwrap();
    let mounts: Vec<String> = report["mounts"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let args: Vec<&str> = report["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "--config");
    // Every file the configuration names is on a mounted volume (the root
    // file system is read-only).
    let paths: Vec<&str> = toml
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with('/'))
        .chain([args[1]])
        .collect();
    for path in &paths {
        assert!(
            mounts
                .iter()
                .any(|m| *path == m || path.starts_with(&format!("{m}/"))),
            "{path} is on no mounted volume"
        );
    }

    // What the Secrets and ConfigMaps would hold.
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    let etc = inside(root, "/etc/clsf");
    for sub in ["config", "keys", "upstream", "issuers", "tls"] {
        std::fs::create_dir_all(etc.join(sub)).unwrap();
    }
    std::fs::create_dir_all(inside(root, "/var/lib/clsf/audit")).unwrap();
    let quickstart = repo_root().join("examples/quickstart");
    let keygen = Command::new(bin("clsfc"))
        .arg("keygen")
        .arg(root.join("ci"))
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let build = Command::new(bin("clsfc"))
        .arg("build")
        .arg(quickstart.join("policy"))
        .arg("--schema")
        .arg(quickstart.join("schema.lock.json"))
        .arg("-o")
        .arg(etc.join("bundle"))
        .arg("--sign")
        .arg(root.join("ci.key"))
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    std::fs::write(
        etc.join("keys/hash.key"),
        "a-hash-key-of-32-characters-long",
    )
    .unwrap();
    std::fs::write(etc.join("upstream/password"), "gateway-password\n").unwrap();
    write_test_ca(&etc.join("tls"));
    std::fs::rename(etc.join("tls/server.pem"), etc.join("tls/tls.crt")).unwrap();
    std::fs::rename(etc.join("tls/server.key"), etc.join("tls/tls.key")).unwrap();
    std::fs::copy(etc.join("tls/ca.pem"), etc.join("upstream/ca.pem")).unwrap();
    Issuer::new("cluster").write_jwks(&etc.join("issuers/cluster-jwks.json"));

    // Paths into the temporary root; the hosted issuer's keys from the
    // local file, since tests reach nothing but loopback.
    let mut local = toml.to_owned();
    for path in &paths {
        local = local.replace(
            &format!("\"{path}\""),
            &format!("\"{}\"", inside(root, path).display()),
        );
    }
    let local = local.replace(
        "jwks_url = \"https://token.actions.githubusercontent.com/.well-known/jwks\"",
        &format!(
            "jwks_file = \"{}\"",
            etc.join("issuers/cluster-jwks.json").display()
        ),
    );
    let config = inside(root, args[1]);
    let check_config = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let out = Command::new(bin("clsf-proxy"))
            .arg("check-config")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // Shipped as is, the trusted key is a placeholder: no start.
    let (ok, text) = check_config(&local);
    assert!(!ok, "the placeholder key was accepted: {text}");
    assert!(text.contains("trusted_keys"), "{text}");

    let public = std::fs::read_to_string(root.join("ci.pub")).unwrap();
    let configured = local.replace(
        "ed25519:REPLACE-WITH-THE-PUBLIC-KEY-FROM-clsfc-keygen",
        public.trim(),
    );
    let (ok, text) = check_config(&configured);
    assert!(ok, "{text}");
    assert!(text.starts_with("ok: "), "{text}");
}

//! The executor-plugin manifest (templates/plugin/plugin.yaml) meets Argo's rules, and the committed
//! ConfigMap is what `argo executor-plugin build` makes of it (Argo's rules for executor plugins:
//! name `<name>-executor-plugin`, the ExecutorPlugin label, the annotations, `sidecar.container` as
//! the container's YAML, `sidecar.automountServiceAccountToken` as "true"/"false").

use serde_json::Value;
use std::path::{Path, PathBuf};

fn templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_manifest_meets_argos_rules_and_the_contracts() {
    let plugin = yaml(&templates().join("plugin/plugin.yaml"));
    assert_eq!(plugin["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(plugin["kind"], "ExecutorPlugin");
    let container = &plugin["spec"]["sidecar"]["container"];
    // Validate(): at least one port, requests, limits, securityContext.
    let port = container["ports"][0]["containerPort"]
        .as_u64()
        .expect("a port");
    assert!(
        port > 10000,
        "a port above 10000 (Argo's advice for unpublished plugins)"
    );
    for part in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][part][resource].is_string(),
                "{part}.{resource}"
            );
        }
    }
    let security = &container["securityContext"];
    assert_eq!(
        security["runAsUser"], 8737,
        "the token file's owner (contract 1.10)"
    );
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert!(
        security.get("runAsGroup").is_none(),
        "runAsGroup would lose GID 0"
    );
    // The server listens on the first port, where the agent calls it.
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args.first(), Some(&"serve"));
    let listen = args
        .iter()
        .position(|a| *a == "--listen")
        .and_then(|i| args.get(i + 1))
        .expect("--listen");
    assert!(
        listen.ends_with(&format!(":{port}")),
        "{listen} vs port {port}"
    );
    let token = args
        .iter()
        .position(|a| *a == "--token-file")
        .and_then(|i| args.get(i + 1))
        .expect("--token-file");
    assert_eq!(*token, "/var/run/argo/token");
    // The shared store is authenticated: Redis with a password and values with a MAC key, both
    // from a Secret (never written in the manifest).
    let env = container["env"].as_array().expect("env");
    let var = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("env {name}"))
    };
    for secret in ["QUARGO_REDIS_PASSWORD", "QUARGO_CACHE_KEY"] {
        assert!(
            var(secret)["valueFrom"]["secretKeyRef"]["name"].is_string(),
            "{secret} comes from a Secret"
        );
        assert!(var(secret).get("value").is_none(), "{secret} is not inline");
    }
    let url = var("QUARGO_CACHE")["value"].as_str().expect("cache URL");
    assert!(
        url.starts_with("redis://:$(QUARGO_REDIS_PASSWORD)@"),
        "Redis with a password: {url}"
    );
    // Only fields of a Kubernetes Container: `argo executor-plugin build` reads it strictly.
    let known = [
        "name",
        "image",
        "command",
        "args",
        "env",
        "ports",
        "resources",
        "securityContext",
        "volumeMounts",
        "imagePullPolicy",
        "workingDir",
        "livenessProbe",
        "readinessProbe",
    ];
    for key in container.as_object().expect("container").keys() {
        assert!(
            known.contains(&key.as_str()),
            "unexpected container field {key}"
        );
    }
}

#[test]
fn the_configmap_is_what_the_manifest_yields() {
    let plugin = yaml(&templates().join("plugin/plugin.yaml"));
    let path = templates().join("plugin/quargo-executor-plugin-configmap.yaml");
    let text = std::fs::read_to_string(&path).expect("configmap");
    assert!(text.starts_with("# This is an auto-generated file. DO NOT EDIT\n"));
    let cm: Value = serde_norway::from_str(&text).expect("configmap YAML");
    assert_eq!(cm["apiVersion"], "v1");
    assert_eq!(cm["kind"], "ConfigMap");
    let name = plugin["metadata"]["name"].as_str().expect("name");
    assert_eq!(cm["metadata"]["name"], format!("{name}-executor-plugin"));
    assert_eq!(
        cm["metadata"]["labels"]["workflows.argoproj.io/configmap-type"],
        "ExecutorPlugin"
    );
    assert_eq!(
        cm["metadata"]["annotations"],
        plugin["metadata"]["annotations"]
    );
    let data = cm["data"].as_object().expect("data");
    let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["sidecar.automountServiceAccountToken", "sidecar.container"]
    );
    let automount = plugin["spec"]["sidecar"]["automountServiceAccountToken"]
        .as_bool()
        .unwrap_or(false);
    assert_eq!(
        data["sidecar.automountServiceAccountToken"],
        automount.to_string()
    );
    let container: Value =
        serde_norway::from_str(data["sidecar.container"].as_str().expect("a YAML string"))
            .expect("container YAML");
    assert_eq!(container, plugin["spec"]["sidecar"]["container"]);
}

#[test]
fn the_workflow_templates_use_the_plugin_as_documented() {
    let mut ops = Vec::new();
    for file in ["workflows/quargo-cutting.yaml", "workflows/quargo-run.yaml"] {
        let wt = yaml(&templates().join(file));
        assert_eq!(wt["kind"], "WorkflowTemplate", "{file}");
        let templates = wt["spec"]["templates"].as_array().expect("templates");
        for t in templates.iter().filter(|t| t.get("plugin").is_some()) {
            let plugin = t["plugin"].as_object().expect("plugin object");
            assert_eq!(
                plugin.len(),
                1,
                "Argo requires exactly one key under plugin"
            );
            let body = &plugin["quargo"];
            assert_eq!(
                body["nodeName"], "{{node.name}}",
                "the idempotency key needs the node name"
            );
            if t.get("retryStrategy").is_some() {
                assert_eq!(
                    body["attempt"], "{{retries}}",
                    "retries need their attempt number"
                );
            }
            assert!(
                t["timeout"].is_string(),
                "the plugin enforces the template's timeout"
            );
            ops.push(body["op"].as_str().expect("op").to_string());
        }
    }
    ops.sort();
    ops.dedup();
    assert_eq!(ops, ["cut", "reconstruct", "run", "simulate"]);
}

/// The WorkflowTemplates against Argo's published WorkflowTemplate CRD (v4.1.2, the full schema in
/// [`crate::support::argo_schemas`]), when that folder is present. The CRD sets no
/// `additionalProperties: false`, so this checks types and required fields, not spelling; the
/// test above checks the plugin bodies.
#[test]
fn the_workflow_templates_validate_against_argos_crd() {
    let crd_path = crate::support::argo_schemas().join("argoproj.io_workflowtemplates.yaml");
    let Ok(text) = std::fs::read_to_string(&crd_path) else {
        eprintln!(
            "note: {} not present; CRD validation skipped",
            crd_path.display()
        );
        return;
    };
    let crd: Value = serde_norway::from_str(&text).expect("CRD YAML");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    assert!(schema.is_object(), "the CRD has an openAPIV3Schema");
    let validator = jsonschema::validator_for(schema).expect("a usable schema");
    for file in ["workflows/quargo-cutting.yaml", "workflows/quargo-run.yaml"] {
        let wt = yaml(&templates().join(file));
        let errors: Vec<String> = validator
            .iter_errors(&wt)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:#?}");
    }
    // The check has teeth: a wrong type is caught.
    let mut broken = yaml(&templates().join("workflows/quargo-run.yaml"));
    broken["spec"]["templates"][1]["timeout"] = serde_json::json!(30);
    assert!(!validator.is_valid(&broken), "a numeric timeout must fail");
}

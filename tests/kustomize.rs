//! The kustomize library (`kubectl apply -k templates/` and its overlays), rendered with
//! `kubectl kustomize` and held to what a cluster would check: Kueue's CRD schemas, the
//! ClusterQueue webhook rules the CRDs do not encode, references that must resolve, and the
//! Argo x Kueue hazards (no queue label where the agent pod would get it, no `default` LocalQueue).

use serde::Deserialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::process::Command;

const ROOTS: [&str; 3] = [
    "templates",
    "templates/overlays/laptop",
    "templates/overlays/production",
];

/// Every object `kubectl kustomize DIR` renders.
fn render(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .args(["kustomize", dir])
        .current_dir(crate::support::root())
        .output()
        .expect("kubectl runs (make test checks that it is installed)");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            let yaml = serde_norway::Value::deserialize(doc).expect("rendered YAML");
            serde_json::to_value(yaml).expect("YAML as JSON")
        })
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// Kueue's CRDs (v1beta2 schemas), by kind: `$QUARGO_KUEUE_SCHEMAS`, else `../shared/schemas/kueue`.
fn kueue_schemas() -> Option<HashMap<String, Value>> {
    let dir = std::env::var_os("QUARGO_KUEUE_SCHEMAS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::support::root().join("../shared/schemas/kueue"));
    let entries = std::fs::read_dir(&dir).ok()?;
    let mut schemas = HashMap::new();
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path()).ok()?;
        let crd: Value = serde_norway::from_str(&text).ok()?;
        let kind = crd["spec"]["names"]["kind"].as_str()?.to_string();
        let version = crd["spec"]["versions"]
            .as_array()?
            .iter()
            .find(|v| v["name"] == "v1beta2")?;
        schemas.insert(kind, version["schema"]["openAPIV3Schema"].clone());
    }
    Some(schemas)
}

#[test]
fn every_overlay_renders_and_its_kueue_objects_validate_against_the_crds() {
    let Some(schemas) = kueue_schemas() else {
        eprintln!(
            "note: Kueue's CRDs are not present (QUARGO_KUEUE_SCHEMAS); schema checks skipped"
        );
        return;
    };
    for root in ROOTS {
        let objects = render(root);
        let kueue: Vec<&Value> = objects
            .iter()
            .filter(|o| {
                o["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("kueue.x-k8s.io/"))
            })
            .collect();
        assert!(kueue.len() >= 8, "{root}: {} Kueue objects", kueue.len());
        for object in kueue {
            assert_eq!(object["apiVersion"], "kueue.x-k8s.io/v1beta2", "{root}");
            let kind = object["kind"].as_str().unwrap();
            let schema = schemas
                .get(kind)
                .unwrap_or_else(|| panic!("no CRD for {kind}"));
            let validator = jsonschema::validator_for(schema).expect("a usable schema");
            let errors: Vec<String> = validator
                .iter_errors(object)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{root}: {kind} {}: {errors:?}",
                name(object)
            );
        }
    }
}

#[test]
fn cluster_queues_meet_the_webhook_rules_and_every_reference_resolves() {
    for root in ROOTS {
        let objects = render(root);
        let flavors: HashSet<&str> = of_kind(&objects, "ResourceFlavor")
            .into_iter()
            .map(name)
            .collect();
        let queues: HashSet<&str> = of_kind(&objects, "ClusterQueue")
            .into_iter()
            .map(name)
            .collect();
        for cq in of_kind(&objects, "ClusterQueue") {
            let cq_name = name(cq);
            let mut resources_seen = HashSet::new();
            let mut flavors_seen = HashSet::new();
            for group in cq["spec"]["resourceGroups"].as_array().unwrap() {
                let covered: Vec<&str> = group["coveredResources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap())
                    .collect();
                for r in &covered {
                    assert!(
                        resources_seen.insert(*r),
                        "{root}: {cq_name}: {r} in two resource groups"
                    );
                }
                for flavor in group["flavors"].as_array().unwrap() {
                    let f = flavor["name"].as_str().unwrap();
                    assert!(
                        flavors.contains(f),
                        "{root}: {cq_name} names flavor {f}, which is not defined"
                    );
                    assert!(
                        flavors_seen.insert(f),
                        "{root}: {cq_name}: flavor {f} twice"
                    );
                    let names: Vec<&str> = flavor["resources"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["name"].as_str().unwrap())
                        .collect();
                    assert_eq!(
                        names, covered,
                        "{root}: {cq_name}/{f}: resources must follow coveredResources"
                    );
                }
            }
        }
        let local = of_kind(&objects, "LocalQueue");
        let local_names: HashSet<&str> = local.iter().map(|q| name(q)).collect();
        assert_eq!(local_names, HashSet::from(["cpu", "gpu", "qpu"]), "{root}");
        for q in local {
            let target = q["spec"]["clusterQueue"].as_str().unwrap();
            assert!(
                queues.contains(target),
                "{root}: LocalQueue {} -> missing {target}",
                name(q)
            );
            assert_eq!(q["metadata"]["namespace"], "quantum", "{root}");
        }
        // The QPU queue caps concurrent sessions with `pods`; its flavor keeps other pods off
        // QPU-access nodes (taint) or, on a laptop, shares the CPU pool.
        let qpu = of_kind(&objects, "ClusterQueue")
            .into_iter()
            .find(|q| name(q) == "quargo-qpu")
            .unwrap();
        assert!(qpu.to_string().contains("\"pods\""), "{root}");
    }
}

#[test]
fn the_agent_pod_is_never_queued_and_access_is_least_privilege() {
    for root in ROOTS {
        let objects = render(root);
        // A LocalQueue named `default` would queue every unlabelled pod, the agent included.
        assert!(of_kind(&objects, "LocalQueue")
            .iter()
            .all(|q| name(q) != "default"));
        for wt in of_kind(&objects, "WorkflowTemplate") {
            // Queue labels in the workflow's podMetadata land on the agent pod (contract 3.7).
            let pod_metadata = wt["spec"]["podMetadata"].to_string();
            assert!(
                !pod_metadata.contains("kueue.x-k8s.io"),
                "{root}: {}",
                name(wt)
            );
            assert_eq!(wt["metadata"]["namespace"], "quantum", "{root}");
            // Plugin templates carry no queue label either: they run in the agent pod.
            for t in wt["spec"]["templates"].as_array().unwrap() {
                if t.get("plugin").is_some() {
                    assert!(!t["metadata"]
                        .to_string()
                        .contains("kueue.x-k8s.io/queue-name"));
                }
            }
        }
        for role in of_kind(&objects, "Role") {
            for rule in role["rules"].as_array().unwrap() {
                for field in ["apiGroups", "resources", "verbs"] {
                    let values = rule[field].as_array().unwrap();
                    assert!(!values.is_empty(), "{root}: {rule}");
                    assert!(
                        values.iter().all(|v| v != "*"),
                        "{root}: a wildcard in {rule}"
                    );
                }
                // Nothing may create pods or read secrets: the pipeline never needs it.
                let text = rule.to_string();
                assert!(
                    !text.contains("\"secrets\"") && !text.contains("\"pods\""),
                    "{text}"
                );
            }
        }
        // The plugin's store URL names the Redis Service this library installs.
        let plugin = of_kind(&objects, "ConfigMap")
            .into_iter()
            .find(|c| name(c) == "quargo-executor-plugin")
            .expect("the plugin ConfigMap");
        assert_eq!(plugin["metadata"]["namespace"], "argo");
        let redis = of_kind(&objects, "Service")
            .into_iter()
            .find(|s| name(s) == "quargo-redis")
            .expect("the Redis Service");
        let host = format!(
            "@{}.{}.svc:{}",
            name(redis),
            redis["metadata"]["namespace"].as_str().unwrap(),
            redis["spec"]["ports"][0]["port"]
        );
        assert!(
            plugin["data"]["sidecar.container"]
                .as_str()
                .unwrap()
                .contains(&host),
            "the plugin does not point at {host}"
        );
    }
}

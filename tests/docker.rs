//! The container images `make images` builds (images/*/Dockerfile), run with the local Docker
//! engine: what they hold, who they run as, and that inside a container memory is the container's
//! limit: a 30-qubit request is refused with a clear message, never OOM-killed.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const IMAGES: [&str; 2] = ["quargo/plugin:latest", "quargo/worker:latest"];

/// 30 qubits in superposition: a 16 GiB state, asked of a container limited to 2 GiB.
fn wide_qasm() -> String {
    let mut text = String::from("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[30];\n");
    for q in 0..30 {
        text.push_str(&format!("h q[{q}];\n"));
    }
    text
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs (make test checks the engine and builds the images first)")
}

fn require_images() {
    for image in IMAGES {
        let out = docker(&["image", "inspect", image]);
        assert!(
            out.status.success(),
            "image {image} is missing: run `make images` (make test does)"
        );
    }
}

/// A folder the container's UID 8737 can write, removed at the end.
struct SharedDir(PathBuf);

impl SharedDir {
    fn new(tag: &str) -> SharedDir {
        let dir = std::env::temp_dir().join(format!("quargo-docker-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        set_mode(&dir, 0o777);
        SharedDir(dir)
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        // Files the container wrote belong to UID 8737; the test runs as root or as their owner.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn images_are_small_labelled_and_run_as_8737() {
    require_images();
    for image in IMAGES {
        let out = docker(&["image", "inspect", image]);
        let inspect: Value = serde_json::from_slice(&out.stdout).unwrap();
        let config = &inspect[0]["Config"];
        assert_eq!(config["User"], "8737:8737", "{image}");
        let labels = &config["Labels"];
        for label in [
            "org.opencontainers.image.source",
            "org.opencontainers.image.version",
            "org.opencontainers.image.revision",
        ] {
            assert!(
                labels[label].as_str().is_some_and(|v| !v.is_empty()),
                "{image} {label}"
            );
        }
        let size = inspect[0]["Size"].as_u64().unwrap();
        assert!(size < 20_000_000, "{image} is {size} bytes");
        // One layer: the binary, on an empty base.
        assert_eq!(
            inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(),
            1,
            "{image}"
        );
    }
    let version = docker(&["run", "--rm", "quargo/worker:latest", "--help"]);
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).contains("--batch"));
}

#[test]
fn a_worker_limited_to_2g_refuses_30_qubits_with_a_message() {
    require_images();
    let dir = SharedDir::new("worker-memory");
    std::fs::write(dir.0.join("wide.qasm"), wide_qasm()).unwrap();
    let mount = format!("{}:/work", dir.0.display());
    let out = docker(&[
        "run",
        "--rm",
        "--memory",
        "2g",
        "-v",
        &mount,
        "quargo/worker:latest",
        "simulate",
        "--qasm-file",
        "/work/wide.qasm",
        "--input",
        r#"observables=["ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"]"#,
        "--cache",
        "lmdb:///work/cache",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    // Exit 1 with a reason, not 137 (killed by the kernel's OOM killer).
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("30"), "{err}");
    assert!(err.contains("memory") || err.contains("bytes"), "{err}");
}

#[test]
fn the_plugin_limited_to_2g_fails_a_30_qubit_node_and_keeps_serving() {
    require_images();
    let dir = SharedDir::new("plugin-memory");
    let token = dir.0.join("token");
    std::fs::write(&token, "docker-test-token\n").unwrap();
    set_mode(&token, 0o444);
    let name = format!("quargo-plugin-test-{}", std::process::id());
    let mount = format!("{}:/var/run/argo", dir.0.display());
    let started = docker(&[
        "run",
        "-d",
        "--rm",
        "--name",
        &name,
        "--memory",
        "2g",
        "-p",
        "127.0.0.1::14735",
        "-v",
        &mount,
        "-e",
        "QUARGO_CACHE=lmdb:///var/run/argo/cache",
        "quargo/plugin:latest",
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    struct Stop(String);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        }
    }
    let _stop = Stop(name.clone());
    let port = String::from_utf8_lossy(&docker(&["port", &name, "14735"]).stdout)
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let base = format!("http://127.0.0.1:{port}");
    let agent = crate::support::http_agent();
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent
        .get(format!("{base}/readyz"))
        .call()
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "the plugin container never got ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let call = |quargo: Value| -> Value {
        let body = json!({
            "workflow": {"metadata": {"name": "wf", "namespace": "ns", "uid": "docker"}},
            "template": {"name": "step", "plugin": {"quargo": quargo}}
        });
        let mut response = agent
            .post(format!("{base}/api/v1/template.execute"))
            .header("Authorization", "Bearer docker-test-token")
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap();
        assert_eq!(response.status(), 200);
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
    };
    let reply = call(json!({
        "op": "simulate",
        "qasm": wide_qasm(),
        "observables": ["ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"],
        "nodeName": "wf.wide",
    }));
    assert_eq!(reply["node"]["phase"], "Failed", "{reply}");
    let message = reply["node"]["message"].as_str().unwrap();
    assert!(message.contains("30"), "{message}");
    // The container is still up and answers the next call.
    let bell = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\nh q[0];\ncx q[0], q[1];\n";
    let next = call(json!({"op": "simulate", "qasm": bell, "nodeName": "wf.bell"}));
    assert_eq!(next["node"]["phase"], "Succeeded", "{next}");
}

#[test]
fn the_plugin_manifest_runs_the_image_make_images_tags() {
    // `make images` tags quargo/<stage>:<crate version>; the manifest must name that tag.
    let cargo = std::fs::read_to_string(crate::support::root().join("plugin/Cargo.toml")).unwrap();
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap();
    let manifest =
        std::fs::read_to_string(crate::support::root().join("templates/plugin/plugin.yaml"))
            .unwrap();
    assert!(
        manifest.contains(&format!("image: quargo/plugin:{version}")),
        "templates/plugin/plugin.yaml does not run quargo/plugin:{version}"
    );
}

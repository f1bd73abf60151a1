//! The plugin's router in process (`tower::ServiceExt::oneshot`), over a temporary LMDB store:
//! the server edge without a socket or a child process. Every branch of `template.execute` is
//! counted in `/metrics`, the cache's events carry the names `quargo cache stats` uses, and typed
//! op errors become Failed nodes with their message.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use quargo::cache::codec::Sealer;
use quargo::cache::Event;
use quargo::server::jobs::JobOptions;
use quargo::server::{app, AppState, ServerConfig};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const TOKEN: &str = "router-test-token";
const BELL: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\nh q[0];\ncx q[0], q[1];\n";

struct Router {
    state: Arc<AppState>,
    _dir: TempDir,
}

/// A directory removed when the test ends.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Router {
    async fn new(name: &str) -> Router {
        let dir = std::env::temp_dir().join(format!("quargo-router-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            token_file: "unused".into(),
            cache_url: format!("lmdb://{}", dir.display()),
            jobs: JobOptions {
                requeue: Duration::from_secs(1),
                inline_wait: Duration::from_secs(20),
                lease_ttl: Duration::from_secs(15),
            },
            batch_size: 64,
            max_body_bytes: 1 << 20,
            threads: 1,
            max_gates: 1_000_000,
            cache_tolerance: quargo::cache::DEFAULT_TOLERANCE,
            sealer: Sealer::unkeyed(),
        };
        let state = AppState::new(TOKEN);
        let init = state.clone();
        tokio::task::spawn_blocking(move || init.initialise(&config))
            .await
            .unwrap()
            .unwrap();
        Router {
            state,
            _dir: TempDir(dir),
        }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, String) {
        let response = app(self.state.clone(), 1 << 20)
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn execute(&self, token: &str, body: impl Into<Body>) -> (StatusCode, String) {
        let request = Request::post("/api/v1/template.execute")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(body.into())
            .unwrap();
        self.send(request).await
    }

    /// One call as its own node (a node's calls share one job: the idempotency key).
    async fn call(&self, mut quargo: Value) -> Value {
        static NODES: AtomicUsize = AtomicUsize::new(0);
        quargo["nodeName"] = json!(format!("wf.step{}", NODES.fetch_add(1, Ordering::Relaxed)));
        let body = json!({
            "workflow": {"metadata": {"name": "wf", "namespace": "ns", "uid": "u1"}},
            "template": {"name": "step", "plugin": {"quargo": quargo}}
        });
        let (status, text) = self.execute(TOKEN, body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn metrics(&self) -> String {
        let request = Request::get("/metrics").body(Body::empty()).unwrap();
        let (status, text) = self.send(request).await;
        assert_eq!(status, StatusCode::OK);
        text
    }
}

/// The value of one sample line of the exposition, or 0 when it is absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_branch_of_execute_is_counted_once() {
    let router = Router::new("branches").await;
    let (status, _) = router.execute("wrong", "{}").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = router.execute(TOKEN, "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let other = json!({"workflow": {"metadata": {"name": "w", "namespace": "n"}},
        "template": {"name": "t", "plugin": {"someone-else": {}}}});
    let (status, text) = router.execute(TOKEN, other.to_string()).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "{}"));
    let failed = router.call(json!({"op": "teleport"})).await;
    assert_eq!(failed["node"]["phase"], "Failed");
    let done = router.call(json!({"op": "simulate", "qasm": BELL})).await;
    assert_eq!(done["node"]["phase"], "Succeeded", "{done}");

    let metrics = router.metrics().await;
    for (series, count) in [
        (r#"quargo_calls_total{op="-",phase="Forbidden"}"#, 1.0),
        (r#"quargo_calls_total{op="-",phase="BadRequest"}"#, 1.0),
        (r#"quargo_calls_total{op="-",phase="NotOurs"}"#, 1.0),
        (r#"quargo_calls_total{op="teleport",phase="Failed"}"#, 1.0),
        (
            r#"quargo_calls_total{op="simulate",phase="Succeeded"}"#,
            1.0,
        ),
    ] {
        assert_eq!(sample(&metrics, series), count, "{series} in\n{metrics}");
    }
    // Five calls, five latency observations.
    let observed: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("quargo_call_duration_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(observed, 5.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_events_in_metrics_use_the_names_of_cache_stats() {
    let router = Router::new("events").await;
    let first = router
        .call(json!({"op": "simulate", "qasm": BELL, "observables": ["ZZ"]}))
        .await;
    assert_eq!(first["node"]["phase"], "Succeeded", "{first}");
    let metrics = router.metrics().await;
    let misses = format!(
        r#"quargo_cache_events_total{{event="{}"}}"#,
        Event::Miss.name()
    );
    assert!(sample(&metrics, &misses) >= 1.0, "{metrics}");
    // Every event name is one `cache stats` prints, and none is the old singular form.
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("quargo_cache_events_total{"))
    {
        assert!(
            Event::ALL
                .iter()
                .any(|e| line.contains(&format!("event=\"{}\"", e.name()))),
            "{line}"
        );
    }
    assert!(!metrics.contains("event=\"miss\""), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn op_errors_are_failed_nodes_with_their_message() {
    let router = Router::new("errors").await;
    for (quargo, needle) in [
        (
            json!({"op": "reconstruct", "plan": "p/0000"}),
            "plan 'p/0000' is not in the store",
        ),
        (
            json!({"op": "cut", "qasm": BELL}),
            "missing input 'maxQubits'",
        ),
        (
            json!({"op": "cut", "qasm": BELL, "maxQubits": "x"}),
            "'maxQubits' must be a non-negative integer, got 'x'",
        ),
        (
            json!({"op": "simulate", "qasm": BELL, "observables": ["ZZZ"]}),
            "observable 'ZZZ' has 3 qubits but the circuit has 2",
        ),
        (
            json!({"op": "simulate", "qasm": BELL, "typo": "1"}),
            "unknown input 'typo'",
        ),
        (
            json!({"op": "simulate", "qasm": "OPENQASM 2.0;\nqreg q[1];\nfoo q[0];\n"}),
            "bad QASM in 'qasm'",
        ),
    ] {
        let reply = router.call(quargo.clone()).await;
        assert_eq!(reply["node"]["phase"], "Failed", "{quargo} -> {reply}");
        let message = reply["node"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{quargo}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_plan_reconstructs_through_the_router() {
    let router = Router::new("pipeline").await;
    let ghz = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[4];\nh q[0];\ncx q[0], q[1];\ncx q[1], q[2];\ncx q[2], q[3];\n";
    let cut = router
        .call(json!({"op": "cut", "qasm": ghz, "maxQubits": "3", "observables": ["ZZZZ"]}))
        .await;
    assert_eq!(cut["node"]["phase"], "Succeeded", "{cut}");
    let param = |reply: &Value, name: &str| -> String {
        reply["node"]["outputs"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let batches: Vec<String> =
        serde_json::from_str(cut["node"]["outputs"]["result"].as_str().unwrap()).unwrap();
    for batch in &batches {
        let done = router.call(json!({"op": "simulate", "batch": batch})).await;
        assert_eq!(done["node"]["phase"], "Succeeded", "{done}");
    }
    let plan = param(&cut, "plan");
    let rec = router
        .call(json!({"op": "reconstruct", "plan": plan}))
        .await;
    assert_eq!(rec["node"]["phase"], "Succeeded", "{rec}");
    let summary: Value =
        serde_json::from_str(rec["node"]["outputs"]["result"].as_str().unwrap()).unwrap();
    // GHZ: <ZZZZ> = 1, reconstructed exactly from the cut fragments.
    let value = summary["expectation"]["ZZZZ"]["value"].as_f64().unwrap();
    assert!((value - 1.0).abs() < 1e-9, "{summary}");
    assert!(summary["output"].as_str().unwrap().starts_with("o/"));
}

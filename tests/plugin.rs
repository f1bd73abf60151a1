//! `quargo serve` driven over HTTP the way Argo's agent drives it (requests shaped as the agent's
//! `ExecuteTemplateArgs`, replies checked against `tests/contracts/executor-plugin-reply.schema.json`), with a
//! real Redis as the store.

use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;
use support::redis_server::{free_port, wait_for_port, RedisServer};
use support::{http_agent, root};

const TOKEN: &str = "abcdefghijklmnopqrstuvwxyz012345";

struct Plugin {
    port: u16,
    child: Option<Child>,
    cache: String,
    token_file: PathBuf,
    extra: Vec<String>,
}

impl Plugin {
    fn start(cache: &str) -> Plugin {
        Plugin::start_with(cache, &[])
    }

    /// With more `quargo serve` arguments.
    fn start_with(cache: &str, extra: &[&str]) -> Plugin {
        let dir = std::env::temp_dir().join(format!("quargo-plugin-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let token_file = dir.join(format!("token-{}", free_port()));
        // As the agent writes it (no newline); a newline is trimmed too.
        std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token");
        let mut plugin = Plugin {
            port: free_port(),
            child: None,
            cache: cache.to_string(),
            token_file,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        plugin.spawn();
        plugin
    }

    fn spawn(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_quargo"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--token-file", self.token_file.to_str().expect("utf-8")])
            .args(["--cache", &self.cache])
            .args([
                "--requeue",
                "1s",
                "--inline-wait",
                "300ms",
                "--job-lease",
                "2s",
            ])
            .args(&self.extra)
            .env("QUARGO_ENABLE_TEST_OPS", "1")
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("quargo serve starts");
        self.child = Some(child);
        wait_for_port(self.port);
        let deadline = Instant::now() + Duration::from_secs(20);
        // Ready once the store is open (a dead store is reported, not waited for).
        while matches!(self.get("/readyz"), (0, _)) || self.get("/readyz").1.starts_with("starting")
        {
            assert!(Instant::now() < deadline, "never ready");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        match http_agent()
            .get(&format!("http://127.0.0.1:{}{path}", self.port))
            .call()
        {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut().read_to_string().unwrap_or_default(),
            ),
            Err(_) => (0, String::new()),
        }
    }

    fn post_raw(&self, auth: Option<&str>, body: &[u8]) -> (u16, String) {
        let mut request = http_agent()
            .post(&format!(
                "http://127.0.0.1:{}/api/v1/template.execute",
                self.port
            ))
            .header("Content-Type", "application/json");
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let mut response = request.send(body).expect("an HTTP answer");
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap_or_default();
        (status, text)
    }

    /// One call as the agent makes it; the reply must match the reply schema.
    fn call(&self, body: &Value) -> Value {
        let (status, text) = self.post_raw(
            Some(&format!("Bearer {TOKEN}")),
            body.to_string().as_bytes(),
        );
        assert_eq!(status, 200, "status {status}: {text}");
        let reply: Value = serde_json::from_str(&text).expect("a JSON reply");
        check_reply(&reply);
        reply
    }

    /// Calls until the node is terminal, as the agent does after each requeue.
    fn call_until_done(&self, body: &Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let reply = self.call(body);
            let phase = reply["node"]["phase"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if phase == "Succeeded" || phase == "Failed" || phase == "Error" {
                assert!(
                    reply.get("requeue").is_none(),
                    "terminal reply with requeue: {reply}"
                );
                return reply;
            }
            assert!(
                reply["requeue"].is_string(),
                "a non-terminal reply must requeue: {reply}"
            );
            assert!(Instant::now() < deadline, "never finished: {reply}");
            // The agent would wait `requeue`; polling faster is allowed and keeps tests short.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn metrics(&self) -> String {
        self.get("/metrics").1
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Posts a large body while reading the answer on another thread: the server may answer (413)
/// and close before the body is sent, and the answer must be read before the connection resets.
fn post_streaming(port: u16, body: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut reader = stream.try_clone().expect("clone");
    let answer = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        got
    });
    let head = format!(
        "POST /api/v1/template.execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).is_ok() {
        for chunk in body.chunks(64 << 10) {
            if stream.write_all(chunk).is_err() {
                break;
            }
        }
    }
    let got = answer.join().expect("reader");
    let text = String::from_utf8_lossy(&got);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn check_reply(reply: &Value) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/contracts/executor-plugin-reply.schema.json"))
            .expect("schema"),
    )
    .expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let errors: Vec<String> = validator
        .iter_errors(reply)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "reply {reply} breaks the contract: {errors:?}"
    );
}

/// The request body the agent sends (contract 1.4): workflow metadata and the processed template.
fn request(uid: &str, node: &str, quargo: Value) -> Value {
    let mut quargo = quargo;
    quargo["nodeName"] = json!(node);
    json!({
        "workflow": {"metadata": {"name": "wf-test", "namespace": "quantum", "uid": uid}},
        "template": {
            "name": node.rsplit('.').next().unwrap_or(node),
            "inputs": {},
            "outputs": {},
            "metadata": {},
            "plugin": {"quargo": quargo}
        }
    })
}

fn outputs_param(reply: &Value, name: &str) -> String {
    reply["node"]["outputs"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .and_then(|p| p["value"].as_str())
        .unwrap_or_else(|| panic!("no output parameter {name} in {reply}"))
        .to_string()
}

fn result_json(reply: &Value) -> Value {
    let text = reply["node"]["outputs"]["result"]
        .as_str()
        .unwrap_or_else(|| panic!("outputs.result must be a JSON string: {reply}"));
    serde_json::from_str(text).expect("result is JSON")
}

fn read_stored(url: &str, key: &str) -> Vec<u8> {
    let store = quargo::store::open(url).expect("store");
    let bytes = store.get(key).expect("get").expect("stored");
    quargo::cache::codec::open(&bytes, key)
        .expect("intact")
        .value
        .to_vec()
}

fn qasm(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).expect("example")
}

fn direct_probabilities(source: &str) -> Vec<f64> {
    let c = quargo::qasm::parse(source).expect("parses");
    quargo::sim::Simulator::new()
        .run(&c)
        .expect("simulates")
        .probabilities()
        .to_vec()
}

#[test]
fn a_whole_pipeline_through_http_with_redis_matches_direct_simulation() {
    let redis = RedisServer::start();
    let plugin = Plugin::start(&redis.url());
    let source = qasm("examples/two_blocks.qasm");
    let uid = "5f0c9a4e-1b2c-4d3e-9f8a-0123456789ab";
    let cut = plugin.call_until_done(&request(
        uid,
        "wf-test.cut",
        json!({"op": "cut", "qasm": source, "maxQubits": "4", "observables": "[\"ZZZZZZZ\"]", "batchSize": "3"}),
    ));
    assert_eq!(cut["node"]["phase"], "Succeeded", "{cut}");
    let plan = outputs_param(&cut, "plan");
    let batches = result_json(&cut);
    let batches = batches.as_array().expect("a list for withParam");
    assert_eq!(batches.len().to_string(), outputs_param(&cut, "batches"));
    assert!(batches.len() > 1);
    for (i, batch) in batches.iter().enumerate() {
        let reply = plugin.call_until_done(&request(
            uid,
            &format!("wf-test.simulate({i}:{})", batch.as_str().expect("key")),
            json!({"op": "simulate", "batch": batch}),
        ));
        assert_eq!(reply["node"]["phase"], "Succeeded", "{reply}");
    }
    let done = plugin.call_until_done(&request(
        uid,
        "wf-test.reconstruct",
        json!({"op": "reconstruct", "plan": plan}),
    ));
    assert_eq!(done["node"]["phase"], "Succeeded", "{done}");
    let output_key = outputs_param(&done, "output");
    let output: Value =
        serde_json::from_slice(&read_stored(&redis.url(), &output_key)).expect("json");
    let direct = direct_probabilities(&source);
    let n = output["num_qubits"].as_u64().expect("n") as usize;
    let mut tvd = 0.0;
    for (i, p) in direct.iter().enumerate() {
        let bits: String = (0..n)
            .rev()
            .map(|q| if i >> q & 1 == 1 { '1' } else { '0' })
            .collect();
        let got = output["probabilities"][&bits].as_f64().unwrap_or(0.0);
        tvd += (got - p).abs() / 2.0;
    }
    assert!(tvd < 1e-9, "TVD {tvd}");
    let expectation = result_json(&done)["expectation"]["ZZZZZZZ"]["value"]
        .as_f64()
        .expect("expectation");
    let parity: f64 = direct
        .iter()
        .enumerate()
        .map(|(i, p)| if i.count_ones() % 2 == 0 { *p } else { -p })
        .sum();
    assert!((expectation - parity).abs() < 1e-9);
    // Simulating a batch again computes nothing: every variant is a cache hit.
    let again = plugin.call_until_done(&request(
        "another-workflow",
        "wf-test.simulate(0)",
        json!({"op": "simulate", "batch": batches[0]}),
    ));
    assert_eq!(outputs_param(&again, "simulated"), "0");

    // `cache clear` drops results and memos but keeps the data; `--all` removes the data too.
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_quargo"))
            .args(args)
            .output()
            .expect("quargo runs")
    };
    let url = redis.url();
    let fetched = cli(&["fetch", &output_key, "--cache", &url]);
    assert!(fetched.status.success());
    let printed: Value = serde_json::from_slice(&fetched.stdout).expect("the output JSON");
    assert_eq!(printed["num_qubits"], output["num_qubits"]);
    assert!(cli(&["cache", "clear", "--cache", &url]).status.success());
    assert!(cli(&["fetch", &plan, "--cache", &url]).status.success());
    assert!(cli(&["cache", "clear", "--all", "--cache", &url])
        .status
        .success());
    let gone = cli(&["fetch", &plan, "--cache", &url]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("is not in"));
}

#[test]
fn foreign_templates_get_an_empty_object_and_never_404() {
    let plugin = Plugin::start(&format!(
        "lmdb://{}",
        std::env::temp_dir()
            .join(format!("quargo-plugin-foreign-{}", std::process::id()))
            .display()
    ));
    let auth = format!("Bearer {TOKEN}");
    // Verbatim from Argo's docs (contract 1.4).
    let docs = br#"{"workflow":{"metadata":{"name":"my-wf"}},"template":{"name":"my-tmpl","inputs":{},"outputs":{},"plugin":{"hello":{}}}}"#;
    assert_eq!(plugin.post_raw(Some(&auth), docs), (200, "{}".to_string()));
    let container = br#"{"workflow":{"metadata":{"name":"w","namespace":"n","uid":"u"}},"template":{"name":"t","inputs":{},"outputs":{},"metadata":{},"container":{"image":"alpine"}}}"#;
    assert_eq!(
        plugin.post_raw(Some(&auth), container),
        (200, "{}".to_string())
    );
}

#[test]
fn auth_size_and_malformed_requests() {
    let plugin = Plugin::start(&format!(
        "lmdb://{}",
        std::env::temp_dir()
            .join(format!("quargo-plugin-auth-{}", std::process::id()))
            .display()
    ));
    let body = request(
        "u",
        "wf.s",
        json!({"op": "simulate", "qasm": qasm("examples/bell.qasm")}),
    )
    .to_string();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some(TOKEN),
        Some("bearer abcdefghijklmnopqrstuvwxyz012345"),
    ] {
        let (status, text) = plugin.post_raw(auth, body.as_bytes());
        assert_eq!(status, 403, "{auth:?}: {text}");
    }
    assert_eq!(
        plugin
            .post_raw(Some(&format!("Bearer {TOKEN}")), body.as_bytes())
            .0,
        200
    );
    // Over axum's default 2 MiB limit.
    let huge = request(
        "u",
        "wf.s",
        json!({"op": "simulate", "qasm": "x".repeat(3 << 20)}),
    )
    .to_string();
    assert_eq!(post_streaming(plugin.port, huge.as_bytes()), 413);
    // A truncated request: a clear 400, which the agent shows on the node.
    let (status, text) = plugin.post_raw(
        Some(&format!("Bearer {TOKEN}")),
        &body.as_bytes()[..body.len() / 2],
    );
    assert_eq!(status, 400);
    assert!(text.contains("not JSON"), "{text}");
}

#[test]
fn bad_inputs_fail_with_a_message_a_user_can_act_on() {
    let plugin = Plugin::start(&format!(
        "lmdb://{}",
        std::env::temp_dir()
            .join(format!("quargo-plugin-bad-{}", std::process::id()))
            .display()
    ));
    let cases = [
        (
            json!({"op": "simulate", "qasm": "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\nfoo q[0];\n"}),
            "line 4",
        ),
        (json!({"op": "teleport"}), "unknown op 'teleport'"),
        (json!({"nodeName": "x"}), "missing 'op'"),
        (
            json!({"op": "cut", "qasm": qasm("examples/bell.qasm")}),
            "maxQubits",
        ),
        (
            json!({"op": "simulate", "batch": "b/0000"}),
            "not in the store",
        ),
        (
            json!({"op": "reconstruct", "plan": "p/0000"}),
            "not in the store",
        ),
        (
            json!({"op": "simulate", "circuit": "c/0000"}),
            "not in the store",
        ),
        (
            json!({"op": "cut", "qasm": qasm("examples/ghz.qasm"), "maxQubits": "abc"}),
            "maxQubits",
        ),
    ];
    for (i, (body, needle)) in cases.into_iter().enumerate() {
        let reply = plugin.call_until_done(&request("u", &format!("wf.bad{i}"), body));
        assert_eq!(reply["node"]["phase"], "Failed", "{reply}");
        let message = reply["node"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "case {i}: '{message}' lacks '{needle}'"
        );
    }
}

#[test]
fn sixteen_concurrent_calls_and_the_same_call_twice() {
    let redis = RedisServer::start();
    let plugin = Plugin::start(&redis.url());
    let circuits: Vec<String> = (0..16)
        .map(|i| {
            format!(
                "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[10];\nh q[0];\nrz({}) q[0];\ncx q[0],q[9];\nry(0.3) q[5];\n",
                0.1 * i as f64
            )
        })
        .collect();
    std::thread::scope(|s| {
        for (i, source) in circuits.iter().enumerate() {
            let plugin = &plugin;
            s.spawn(move || {
                let reply = plugin.call_until_done(&request(
                    "concurrent",
                    &format!("wf.sim{i}"),
                    json!({"op": "simulate", "qasm": source, "observables": ["ZIIIIIIIIZ"]}),
                ));
                assert_eq!(reply["node"]["phase"], "Succeeded", "{reply}");
                let direct = direct_probabilities(source);
                let zz: f64 = direct
                    .iter()
                    .enumerate()
                    .map(|(k, p)| if (k & 1) ^ (k >> 9 & 1) == 0 { *p } else { -p })
                    .sum();
                let got = result_json(&reply)["expectation"]["ZIIIIIIIIZ"]
                    .as_f64()
                    .expect("value");
                assert!((got - zz).abs() < 1e-12);
            });
        }
    });
    // The same slow call twice at once: one job, one computation (one cache miss).
    let slow = random_circuit(21, 120, 7);
    let body = request("twice", "wf.slow", json!({"op": "simulate", "qasm": slow}));
    let misses_before = metric(
        &plugin.metrics(),
        "quargo_cache_events_total{event=\"misses\"}",
    );
    let replies: Vec<Value> = std::thread::scope(|s| {
        let a = s.spawn(|| plugin.call(&body));
        let b = s.spawn(|| plugin.call(&body));
        vec![a.join().expect("a"), b.join().expect("b")]
    });
    for r in &replies {
        assert!(
            ["Running", "Succeeded"].contains(&r["node"]["phase"].as_str().unwrap_or_default()),
            "{r}"
        );
    }
    let done = plugin.call_until_done(&body);
    assert_eq!(done["node"]["phase"], "Succeeded");
    let misses = metric(
        &plugin.metrics(),
        "quargo_cache_events_total{event=\"misses\"}",
    ) - misses_before;
    assert_eq!(
        misses, 1.0,
        "the same call twice started one job (one computation)"
    );
}

fn random_circuit(n: usize, gates: usize, seed: u64) -> String {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut src = format!("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{n}];\n");
    for _ in 0..gates {
        let a = next() % n;
        let b = (a + 1 + next() % (n - 1)) % n;
        src.push_str(&format!(
            "ry({}) q[{a}];\ncx q[{a}],q[{b}];\n",
            (next() % 1000) as f64 / 300.0
        ));
    }
    src
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_restart_mid_job_resumes_from_the_store() {
    let redis = RedisServer::start();
    let mut plugin = Plugin::start(&redis.url());
    let source = random_circuit(23, 200, 11);
    let body = request(
        "restart",
        "wf.long",
        json!({"op": "simulate", "qasm": source}),
    );
    let first = plugin.call(&body);
    assert_eq!(
        first["node"]["phase"], "Running",
        "the job should outlast the inline wait: {first}"
    );
    plugin.kill();
    plugin.spawn();
    // The new process finds the Running record, sees its lease lapse, and runs the job again.
    let done = plugin.call_until_done(&body);
    assert_eq!(done["node"]["phase"], "Succeeded", "{done}");
    let key = outputs_param(&done, "probabilities");
    let store = quargo::store::open(&redis.url()).expect("store");
    let bytes = store
        .get(&key)
        .expect("get")
        .expect("the probabilities are cached");
    let values = quargo::cache::codec::open_any(&bytes).expect("intact");
    let probabilities: Vec<f64> = values
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let direct = direct_probabilities(&source);
    assert_eq!(probabilities.len(), direct.len());
    let tvd: f64 = probabilities
        .iter()
        .zip(&direct)
        .map(|(a, b)| (a - b).abs())
        .sum::<f64>()
        / 2.0;
    assert!(tvd < 1e-12, "TVD {tvd}");
}

#[test]
fn the_template_timeout_is_enforced_and_a_panic_fails_one_job_only() {
    let redis = RedisServer::start();
    let plugin = Plugin::start(&redis.url());
    let mut body = request(
        "timeout",
        "wf.late",
        json!({"op": "simulate", "qasm": random_circuit(23, 300, 5)}),
    );
    body["template"]["timeout"] = json!("1s");
    let reply = plugin.call_until_done(&body);
    assert_eq!(reply["node"]["phase"], "Failed", "{reply}");
    assert!(
        reply["node"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("timeout"),
        "{reply}"
    );

    let reply = plugin.call_until_done(&request("panic", "wf.boom", json!({"op": "__panic"})));
    assert_eq!(reply["node"]["phase"], "Failed");
    assert!(
        reply["node"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("internal error"),
        "{reply}"
    );
    assert_eq!(plugin.get("/healthz").0, 200);
    let after = plugin.call_until_done(&request(
        "panic",
        "wf.after",
        json!({"op": "simulate", "qasm": qasm("examples/bell.qasm")}),
    ));
    assert_eq!(after["node"]["phase"], "Succeeded");
}

#[test]
fn a_dead_store_is_503_and_metrics_and_sigterm_work() {
    let dead = format!("redis://127.0.0.1:{}/0", free_port());
    let plugin = Plugin::start(&dead);
    let body = request(
        "u",
        "wf.s",
        json!({"op": "simulate", "qasm": qasm("examples/bell.qasm")}),
    );
    let (status, text) = plugin.post_raw(
        Some(&format!("Bearer {TOKEN}")),
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("store"), "{text}");
    assert_eq!(plugin.get("/healthz").0, 200, "alive");
    assert_eq!(plugin.get("/readyz").0, 503, "not ready");
    let metrics = plugin.metrics();
    for needle in [
        "quargo_calls_total{op=\"simulate\",phase=\"Unavailable\"} 1",
        "quargo_call_duration_seconds_bucket",
        "quargo_jobs_running",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }
    let mut plugin = plugin;
    let child = plugin.child.take().expect("running");
    let pid = child.id() as i32;
    // SAFETY: sending SIGTERM to our own child process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = wait_exit(child, Duration::from_secs(10));
    assert_eq!(status, Some(0), "graceful exit on SIGTERM");
}

fn wait_exit(mut child: Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_reply_schema_matches_argos_swagger() {
    let swagger_path = crate::support::argo_schemas().join("executor-plugin/swagger.yml");
    let Ok(text) = std::fs::read_to_string(&swagger_path) else {
        eprintln!(
            "note: {} not present; the local schema alone is used",
            swagger_path.display()
        );
        return;
    };
    let swagger: Value = serde_norway::from_str(&text).expect("swagger YAML");
    let ours: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/contracts/executor-plugin-reply.schema.json"))
            .expect("schema"),
    )
    .expect("json");
    let names = |v: &Value| -> Vec<String> {
        let mut n: Vec<String> = v["properties"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        n.sort();
        n
    };
    assert_eq!(
        names(&swagger["definitions"]["ExecuteTemplateReply"]),
        names(&ours)
    );
    for def in ["NodeResult", "Outputs", "Parameter"] {
        assert_eq!(
            names(&swagger["definitions"][def]),
            names(&ours["definitions"][def]),
            "{def}"
        );
    }
}

fn message(reply: &Value) -> String {
    reply["node"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn failed_with(reply: &Value, needle: &str) {
    assert_eq!(reply["node"]["phase"], "Failed", "{reply}");
    assert!(message(reply).contains(needle), "'{needle}' not in {reply}");
}

#[test]
fn the_probes_hostile_requests_get_answers_and_the_server_survives() {
    let redis = RedisServer::start();
    let plugin = Plugin::start(&redis.url());
    let head = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\n";
    // 1. A cut too expensive to reconstruct (16 and 24 cuts).
    for (node, max_qubits, probabilities) in
        [("a", "3", "true"), ("b", "2", "false"), ("c", "3", "false")]
    {
        let reply = plugin.call_until_done(&request(
            "hostile",
            &format!("wf.cut-{node}"),
            json!({"op": "run", "qasm": qasm("examples/qaoa_ring8.qasm"), "maxQubits": max_qubits,
                   "probabilities": probabilities, "observables": ["ZZIIIIII"]}),
        ));
        failed_with(&reply, "Pauli-label assignments");
    }
    // 2. Long flat expressions, as a call parameter and inside a gate body.
    let long = vec!["1"; 40_000].join("+");
    for (node, body) in [
        ("sum", format!("{head}rx({long}) q[0];")),
        (
            "product",
            format!("{head}rx({}) q[0];", vec!["1"; 40_000].join("*")),
        ),
        (
            "body",
            format!("{head}gate g(t) a {{ rx({long}) a; }}\ng(1) q[0];"),
        ),
    ] {
        let reply = plugin.call_until_done(&request(
            "hostile",
            &format!("wf.expr-{node}"),
            json!({"op": "simulate", "qasm": body}),
        ));
        failed_with(&reply, "operations");
    }
    // 6. 524 bytes that expand to 131,072 gates: answered within Argo's 30 s, every call.
    let mut nested = format!("{head}gate g0 a {{ h a; }}\n");
    for k in 1..=17 {
        nested += &format!("gate g{k} a {{ g{} a; g{} a; }}\n", k - 1, k - 1);
    }
    nested += "g17 q[0];\n";
    let body = request(
        "hostile",
        "wf.nested",
        json!({"op": "simulate", "qasm": nested, "observables": ["IZ"]}),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let started = Instant::now();
        let reply = plugin.call(&body);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a call took {:?}",
            started.elapsed()
        );
        if reply["node"]["phase"] != "Running" {
            break reply;
        }
        assert!(Instant::now() < deadline, "never finished");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(done["node"]["phase"], "Succeeded", "{done}");
    // 131,072 Hadamards are the identity: <IZ> = 1.
    let iz = result_json(&done)["expectation"]["IZ"]
        .as_f64()
        .expect("<IZ>");
    assert!((iz - 1.0).abs() < 1e-9, "{iz}");
    // More than --max-gates (1,000,000) is refused before it is expanded, at once.
    let mut huge = format!("{head}gate g0 a {{ h a; }}\n");
    for k in 1..=24 {
        huge += &format!("gate g{k} a {{ g{} a; g{} a; }}\n", k - 1, k - 1);
    }
    huge += "g24 q[0];\n";
    let started = Instant::now();
    let reply = plugin.call(&request(
        "hostile",
        "wf.huge",
        json!({"op": "simulate", "qasm": huge}),
    ));
    failed_with(&reply, "expands to more than 1000000 gates");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // 9. Nonsense inputs.
    for (node, extra, needle) in [
        ("shots0", json!({"shots": "0"}), "shots"),
        (
            "shotsmax",
            json!({"shots": "18446744073709551615"}),
            "shots",
        ),
        ("maxcuts", json!({"maxCuts": [1, 2]}), "maxCuts"),
        (
            "typo",
            json!({"maxqubits": "4"}),
            "unknown input 'maxqubits'",
        ),
        ("project", json!({"project": {"x": 1}}), "project"),
    ] {
        let mut quargo =
            json!({"op": "run", "qasm": qasm("examples/two_blocks.qasm"), "maxQubits": "4"});
        for (k, v) in extra.as_object().unwrap() {
            quargo[k] = v.clone();
        }
        let reply = plugin.call_until_done(&request("hostile", &format!("wf.{node}"), quargo));
        failed_with(&reply, needle);
    }
    // 10. A deadline past the end of time.
    for (node, deadline) in [("d1", json!(u64::MAX)), ("d2", json!(u64::MAX.to_string()))] {
        let mut body = request(
            "hostile",
            &format!("wf.{node}"),
            json!({"op": "simulate", "qasm": random_circuit(18, 200, 3)}),
        );
        body["template"]["activeDeadlineSeconds"] = deadline;
        let reply = plugin.call_until_done(&body);
        assert_eq!(reply["node"]["phase"], "Succeeded", "{reply}");
    }
    // 14. A plugin object with no key or with ours beside another is not addressed to us.
    for plugin_object in [
        json!({}),
        json!({"quargo": {"op": "simulate"}, "other": {}}),
    ] {
        let mut body = request("hostile", "wf.shape", json!({}));
        body["template"]["plugin"] = plugin_object;
        assert_eq!(plugin.call(&body), json!({}));
    }
    assert_eq!(plugin.get("/healthz").0, 200);
    assert_eq!(plugin.get("/readyz").0, 200);
}

#[test]
fn stored_data_is_the_text_sent_and_no_key_is_returned_that_does_not_exist() {
    let redis = RedisServer::start();
    let plugin = Plugin::start(&redis.url());
    // 7. 610 bytes of gate definitions: the store keeps them as sent.
    let mut source = String::from(
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[4];\ngate g0 a, b { cx a, b; h a; }\n",
    );
    for k in 1..=14 {
        source += &format!("gate g{k} a, b {{ g{} a, b; g{} b, a; }}\n", k - 1, k - 1);
    }
    source += "g14 q[0], q[1];\ng14 q[2], q[3];\ncx q[1], q[2];\n";
    let reply = plugin.call_until_done(&request(
        "amplify",
        "wf.cut",
        json!({"op": "cut", "qasm": source, "maxQubits": "2"}),
    ));
    let plan: Value =
        serde_json::from_slice(&read_stored(&redis.url(), &outputs_param(&reply, "plan")))
            .expect("plan");
    let circuit_key = plan["circuit"].as_str().expect("circuit key");
    assert_eq!(read_stored(&redis.url(), circuit_key), source.as_bytes());
    // 8. Over 24 qubits probabilities are not stored, so no key names them.
    let mut wide = String::from("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[25];\nh q[0];\n");
    for k in 1..25 {
        wide += &format!("cx q[{}],q[{k}];\n", k - 1);
    }
    let z = format!("{}ZZ", "I".repeat(23));
    let reply = plugin.call_until_done(&request(
        "wide",
        "wf.wide",
        json!({"op": "simulate", "qasm": wide, "observables": [z]}),
    ));
    assert_eq!(reply["node"]["phase"], "Succeeded", "{reply}");
    assert_eq!(outputs_param(&reply, "probabilities"), "");
    assert!(result_json(&reply)["probabilities"].is_null());
    let zz = result_json(&reply)["expectation"][z.as_str()]
        .as_f64()
        .expect("<ZZ>");
    assert!((zz - 1.0).abs() < 1e-9, "{zz}");
    // At 12 qubits the key is returned, and it is in the store.
    let reply = plugin.call_until_done(&request(
        "narrow",
        "wf.narrow",
        json!({"op": "simulate", "qasm": qasm("examples/ghz.qasm")}),
    ));
    let key = outputs_param(&reply, "probabilities");
    let store = quargo::store::open(&redis.url()).expect("store");
    assert!(
        store.get(&key).expect("get").is_some(),
        "{key} is in the store"
    );
}

#[test]
fn jobs_are_admitted_against_the_memory_budget() {
    let redis = RedisServer::start();
    let plugin = Plugin::start_with(&redis.url(), &["--max-memory", "300M"]);
    // A 25-qubit state is 512 MiB.
    let mut wide = String::from("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[25];\nh q[0];\n");
    wide += "cx q[0],q[24];\n";
    let reply = plugin.call_until_done(&request(
        "memory",
        "wf.big",
        json!({"op": "simulate", "qasm": wide, "observables": ["Z".repeat(25)]}),
    ));
    failed_with(&reply, "memory");
    // A 24-qubit simulate needs a 256 MiB state and 256 MiB of probability buffers: over 300M.
    let reply = plugin.call_until_done(&request(
        "memory",
        "wf.probs",
        json!({"op": "simulate", "qasm": random_circuit(24, 20, 1)}),
    ));
    failed_with(&reply, "memory");
    // 22 qubits (64 + 64 MiB) fits.
    let reply = plugin.call_until_done(&request(
        "memory",
        "wf.fits",
        json!({"op": "simulate", "qasm": random_circuit(22, 20, 1)}),
    ));
    assert_eq!(reply["node"]["phase"], "Succeeded", "{reply}");
}

#[test]
fn a_job_past_its_deadline_stops_computing_and_sigterm_is_prompt() {
    let redis = RedisServer::start();
    let mut plugin = Plugin::start(&redis.url());
    let mut body = request(
        "cancel",
        "wf.slow",
        json!({"op": "simulate", "qasm": random_circuit(24, 3000, 9)}),
    );
    body["template"]["timeout"] = json!("1s");
    let reply = plugin.call_until_done(&body);
    failed_with(&reply, "timeout");
    // The job stops at its next step, not after its whole computation.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&plugin.metrics(), "quargo_jobs_running") > 0.0 {
        assert!(
            Instant::now() < deadline,
            "the cancelled job is still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGTERM during a long job: the server stops at once and leaves the job to another server.
    let body = request(
        "cancel",
        "wf.term",
        json!({"op": "simulate", "qasm": random_circuit(24, 3000, 10)}),
    );
    assert_eq!(plugin.call(&body)["node"]["phase"], "Running");
    let child = plugin.child.take().expect("running");
    // SAFETY: sending SIGTERM to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(
        wait_exit(child, Duration::from_secs(10)),
        Some(0),
        "a prompt, clean exit"
    );
    // The job was not given a verdict: a new server takes it over.
    plugin.spawn();
    let reply = plugin.call(&body);
    assert_ne!(reply["node"]["phase"], "Failed", "{reply}");
}

#[test]
fn a_store_failure_is_not_a_jobs_final_answer() {
    let mut redis = RedisServer::start();
    let plugin = Plugin::start(&redis.url());
    let source = random_circuit(22, 200, 4);
    let body = request(
        "store-down",
        "wf.s",
        json!({"op": "simulate", "qasm": source, "observables": ["Z".repeat(22)]}),
    );
    assert_eq!(plugin.call(&body)["node"]["phase"], "Running");
    redis.kill();
    // While the store is down, calls get 503 (Argo retries) or Running; never a terminal answer.
    for _ in 0..10 {
        let (status, text) = plugin.post_raw(
            Some(&format!("Bearer {TOKEN}")),
            body.to_string().as_bytes(),
        );
        assert!(
            status == 503 || text.contains("Running"),
            "{status}: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(plugin.get("/readyz").0, 503, "not ready without its store");
    assert_eq!(plugin.get("/healthz").0, 200, "but alive");
    redis.spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let (status, text) = plugin.post_raw(
            Some(&format!("Bearer {TOKEN}")),
            body.to_string().as_bytes(),
        );
        if status == 200 {
            let reply: Value = serde_json::from_str(&text).expect("JSON");
            if reply["node"]["phase"] != "Running" {
                break reply;
            }
        }
        assert!(
            Instant::now() < deadline,
            "never finished after the store came back"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(done["node"]["phase"], "Succeeded", "{done}");
}

#[test]
fn keyed_values_cannot_be_forged_by_whoever_writes_to_redis() {
    use quargo::cache::{codec, id};
    let redis = RedisServer::start();
    let dir = std::env::temp_dir().join(format!("quargo-plugin-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let secret = dir.join("mac-secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").expect("secret");
    let source = qasm("examples/bell.qasm");
    // The entry an attacker writes: the right key, proof and envelope checksum, a wrong answer.
    let circuit = quargo::qasm::parse(&source).expect("bell");
    let circuit_id = id::circuit_id(&circuit).expect("id");
    let text = format!("{}|{}|expectation;2:ZZ", id::RECIPE, circuit_id.digest);
    let store_key = format!("r/{}", blake3::hash(text.as_bytes()).to_hex());
    let proof = id::encode_proof(&circuit_id.graph.to_bytes(), &circuit_id.precision);
    let forged = codec::seal(&text, &proof, &(-0.886f64).to_le_bytes());
    let store = quargo::store::open(&redis.url()).expect("store");
    let ask = |plugin: &Plugin, node: &str| {
        let reply = plugin.call_until_done(&request(
            "forgery",
            node,
            json!({"op": "simulate", "qasm": source, "observables": ["ZZ"]}),
        ));
        result_json(&reply)["expectation"]["ZZ"]
            .as_f64()
            .expect("a value")
    };
    {
        // Unkeyed, the forgery works: this is what the MAC is for.
        let plugin = Plugin::start(&redis.url());
        store.put(&store_key, &forged).expect("forge");
        assert_eq!(
            ask(&plugin, "wf.unkeyed"),
            -0.886,
            "the forged value is served"
        );
    }
    store.put(&store_key, &forged).expect("forge");
    let keyed = Plugin::start_with(
        &redis.url(),
        &["--cache-key-file", secret.to_str().expect("utf-8")],
    );
    assert!(
        (ask(&keyed, "wf.keyed") - 1.0).abs() < 1e-12,
        "recomputed, not forged"
    );
    assert!((ask(&keyed, "wf.keyed-again") - 1.0).abs() < 1e-12);
}

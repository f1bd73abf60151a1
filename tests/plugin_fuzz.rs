//! Fuzzing the plugin's HTTP body as Argo's agent sends it: well-formed requests whose `quargo`
//! object has random fields of random types, random template deadlines, and the same bodies
//! truncated or with bytes flipped, all sent to a real `quargo serve` (embedded store). Every
//! call must get a well-formed answer (200 with `{}` or a node in Argo's phases, 400 for a body
//! that is not JSON, 503 for a store that is unavailable) within Argo's 30 s, and the server must
//! stay alive. `make fuzz` runs many cases; the default run is short.

use proptest::prelude::*;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;
use support::redis_server::{free_port, wait_for_port};
use support::{http_agent, root};

const TOKEN: &str = "fuzzing-token-0123456789abcdef";

struct Server {
    port: u16,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        let dir = std::env::temp_dir().join(format!("quargo-plugin-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let token = dir.join("token");
        std::fs::write(&token, TOKEN).expect("token");
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_quargo"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--token-file", token.to_str().expect("utf-8")])
            .args([
                "--cache",
                &format!("lmdb://{}?max_bytes=256M", dir.join("store").display()),
            ])
            .args([
                "--inline-wait",
                "50ms",
                "--requeue",
                "1s",
                "--max-memory",
                "1G",
            ])
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("quargo serve starts");
        wait_for_port(port);
        Server { port, child }
    }
}

fn post(port: u16, body: &[u8]) -> (u16, String) {
    let started = Instant::now();
    let mut response = http_agent()
        .post(&format!("http://127.0.0.1:{port}/api/v1/template.execute"))
        .header("Content-Type", "application/json")
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send(body)
        .expect("an HTTP answer within Argo's 30 s");
    assert!(started.elapsed() < Duration::from_secs(30));
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn check(port: u16, body: &[u8]) {
    let (status, text) = post(port, body);
    match status {
        200 => {
            let reply: Value = serde_json::from_str(&text).expect("a JSON reply");
            if reply != json!({}) {
                let phase = reply["node"]["phase"].as_str().expect("a phase");
                assert!(
                    ["Pending", "Running", "Succeeded", "Failed", "Error"].contains(&phase),
                    "{reply}"
                );
                let terminal = phase != "Running" && phase != "Pending";
                assert_eq!(reply.get("requeue").is_none(), terminal, "{reply}");
            }
        }
        400 | 503 => assert!(!text.is_empty(), "{status} without a reason"),
        other => panic!("status {other}: {text}"),
    }
    let health = http_agent()
        .get(&format!("http://127.0.0.1:{port}/healthz"))
        .call()
        .map(|r| r.status().as_u16());
    assert_eq!(
        health.ok(),
        Some(200),
        "the server died on {}",
        String::from_utf8_lossy(body)
    );
}

const QASM: &[&str] = &[
    "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\nh q[0];\ncx q[0],q[1];\n",
    "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[4];\nh q;\ncx q[0],q[1];\ncx q[1],q[2];\ncx q[2],q[3];\nrz(1e17) q[3];\n",
    "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\nrx(1+1+1+1+1) q[0];\n",
    "OPENQASM 2.0;\nqreg q[1];\nfoo q[0];\n",
    "OPENQASM 3.0;\n",
    "",
];

/// Every input the ops know, and one they do not.
fn keys() -> Vec<&'static str> {
    let mut keys = quargo::server::ops::KNOWN_INPUTS.to_vec();
    keys.push("bogus");
    keys
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        prop::sample::select(vec![
            "cut",
            "simulate",
            "reconstruct",
            "run",
            "__panic",
            "",
            "0",
            "3",
            "18446744073709551615",
            "-1",
            "1e9",
            "ZZ",
            "XIZY",
            "0.5*ZZII + 0.5*XXII",
            "weighted",
            "uniform",
            "true",
            "maybe",
            "c/00",
            "p/00",
            "b/00",
            "{{retries}}",
            "[\"ZZ\"]",
            "[1,2]",
        ])
        .prop_map(Value::from),
        prop::sample::select(QASM).prop_map(Value::from),
    ]
}

fn field_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["cut", "simulate", "reconstruct", "run", "nope"]),
        prop::sample::select(QASM),
        prop::collection::vec((prop::sample::select(keys()), field_value()), 0..6),
        prop::option::of(field_value()),
        prop::option::of(prop::sample::select(vec!["1s", "1h", "0", "1d", "-5s", "2562047h", "x"])),
        any::<u32>(),
    )
        .prop_map(|(op, qasm, fields, deadline, timeout, uid)| {
            let mut quargo = json!({"op": op, "qasm": qasm, "maxQubits": "2", "nodeName": format!("wf.n{uid}")});
            for (k, v) in fields {
                quargo[k] = v;
            }
            let mut template = json!({"name": "t", "inputs": {}, "outputs": {}, "plugin": {"quargo": quargo}});
            if let Some(d) = deadline {
                template["activeDeadlineSeconds"] = d;
            }
            if let Some(t) = timeout {
                template["timeout"] = json!(t);
            }
            json!({"workflow": {"metadata": {"name": "fuzz", "namespace": "q", "uid": format!("u{uid}")}}, "template": template})
        })
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150)
}

#[test]
fn the_plugin_answers_every_body_and_stays_alive() {
    use proptest::test_runner::{Config, TestRunner};
    let server = Server::start();
    let port = server.port;
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new(config.clone())
        .run(&body(), |body| {
            check(port, body.to_string().as_bytes());
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let damaged = (
        body(),
        any::<prop::sample::Index>(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    );
    TestRunner::new(config)
        .run(&damaged, |(body, cut, flips)| {
            let mut bytes = body.to_string().into_bytes();
            let keep = cut.index(bytes.len() + 1).max(1);
            bytes.truncate(keep);
            for (at, byte) in flips {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            check(port, &bytes);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    drop(server);
}

//! The `quargo` binary end to end: JSON shapes, Qiskit bit order, sampling, errors and exit codes.

use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

use crate::support;
use support::root;

fn quargo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quargo"))
        .args(args)
        .current_dir(root())
        // Never the user's cache: one directory per test process, shared by its quargo runs.
        .env(
            "QUARGO_CACHE_DIR",
            std::env::temp_dir().join(format!("quargo-cli-cache-{}", std::process::id())),
        )
        .env_remove("QUARGO_CACHE")
        .output()
        .expect("quargo runs")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "quargo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn temp_qasm(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("quargo-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    path
}

#[test]
fn bell_probabilities() {
    let v = json(&quargo(&["simulate", "examples/bell.qasm"]));
    assert_eq!(v["num_qubits"], 2);
    let p = v["probabilities"].as_object().unwrap();
    assert_eq!(p.len(), 2, "{p:?}");
    assert!((p["00"].as_f64().unwrap() - 0.5).abs() < 1e-12);
    assert!((p["11"].as_f64().unwrap() - 0.5).abs() < 1e-12);
}

#[test]
fn qubit_zero_is_the_rightmost_bit_and_first_register_is_lowest() {
    let path = temp_qasm(
        "order.qasm",
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg a[2];\nqreg b[1];\nx a[0];\nx b[0];\n",
    );
    let v = json(&quargo(&["simulate", path.to_str().unwrap()]));
    assert_eq!(v["num_qubits"], 3);
    let p = v["probabilities"].as_object().unwrap();
    assert_eq!(p.keys().collect::<Vec<_>>(), vec!["101"]);
}

#[test]
fn seeded_shots_are_reproducible() {
    let args = [
        "simulate",
        "examples/ghz.qasm",
        "--shots",
        "4000",
        "--seed",
        "11",
        "--threads",
        "2",
    ];
    let a = json(&quargo(&args));
    let b = json(&quargo(&args));
    assert_eq!(a, b);
    assert_eq!(a["shots"], 4000);
    assert_eq!(a["seed"], 11);
    let counts = a["counts"].as_object().unwrap();
    assert_eq!(counts.len(), 2);
    let zeros = counts["000000000000"].as_u64().unwrap();
    let ones = counts["111111111111"].as_u64().unwrap();
    assert_eq!(zeros + ones, 4000);
    // Binomial(4000, 1/2): 5 standard deviations is about 158.
    assert!(zeros.abs_diff(2000) < 158, "{zeros}");
}

#[test]
fn observables_are_reported() {
    let v = json(&quargo(&[
        "simulate",
        "examples/bell.qasm",
        "--observable",
        "ZZ",
        "--observable",
        "XI",
    ]));
    assert!((v["expectation"]["ZZ"]["value"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    assert!(v["expectation"]["XI"]["value"].as_f64().unwrap().abs() < 1e-12);
}

#[test]
fn errors_name_the_file_line_and_column_and_exit_nonzero() {
    let path = temp_qasm(
        "bad.qasm",
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\nfoo q[0];\n",
    );
    let out = quargo(&["simulate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.qasm: line 4, column 1: unknown gate 'foo'"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = quargo(&["simulate", "no/such/file.qasm"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read no/such/file.qasm"));

    // One parser for every observable: simulate and run word a width error the same way.
    let out = quargo(&["simulate", "examples/bell.qasm", "--observable", "ZZZ"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("observable 'ZZZ' has 3 qubits but the circuit has 2"),
        "{err}"
    );
}

#[test]
fn simulate_takes_weighted_sums_like_run() {
    let out = quargo(&[
        "simulate",
        "examples/bell.qasm",
        "--observable",
        "ZZ",
        "--observable",
        "0.5*ZZ - 2*XX",
        "--no-cache",
    ]);
    let sum = json(&out);
    // Keys are the texts as given, in the order given (not sorted).
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.find("\"ZZ\"").unwrap() < text.find("\"0.5*ZZ - 2*XX\"").unwrap(),
        "{text}"
    );
    // Bell state: <ZZ> = <XX> = 1, so 0.5 - 2 = -1.5.
    let value = sum["expectation"]["0.5*ZZ - 2*XX"]["value"]
        .as_f64()
        .unwrap();
    assert!((value + 1.5).abs() < 1e-12, "{value}");
}

#[test]
fn too_large_circuits_are_refused_before_allocating() {
    let path = temp_qasm(
        "wide.qasm",
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[45];\nh q[0];\n",
    );
    let out = quargo(&["simulate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("45-qubit state needs 512.0 TiB"), "{err}");
    let out = quargo(&["simulate", "examples/ghz.qasm", "--max-memory", "1000"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn help_explains_the_commands() {
    let out = quargo(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("simulate"), "{text}");
    let out = quargo(&["simulate", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--shots",
        "--seed",
        "--threads",
        "--observable",
        "rightmost",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
}

#[test]
fn cut_prints_the_plan() {
    let v = json(&quargo(&[
        "cut",
        "examples/two_blocks.qasm",
        "--max-qubits",
        "4",
    ]));
    assert_eq!(v["num_qubits"], 7);
    let cuts = v["cuts"].as_array().unwrap();
    assert_eq!(cuts.len(), 1);
    assert_eq!(cuts[0]["qubit"], 3);
    let fragments = v["fragments"].as_array().unwrap();
    assert_eq!(fragments.len(), 2);
    assert!(fragments.iter().all(|f| f["width"].as_u64().unwrap() <= 4));
    assert_eq!(v["variants"], 7);
    assert_eq!(v["variants_without_dedup"], 16);

    let out = quargo(&[
        "cut",
        "examples/two_blocks.qasm",
        "--max-qubits",
        "4",
        "--max-cuts",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs 1 cut(s)") && err.contains("max_qubits = 7"),
        "{err}"
    );
}

#[test]
fn run_reproduces_direct_simulation() {
    let direct = json(&quargo(&["simulate", "examples/two_blocks.qasm"]));
    let cut = json(&quargo(&[
        "run",
        "examples/two_blocks.qasm",
        "--max-qubits",
        "4",
        "--observable",
        "ZZZZZZZ",
    ]));
    assert_eq!(cut["num_qubits"], 7);
    let (p, q) = (
        direct["probabilities"].as_object().unwrap(),
        cut["probabilities"].as_object().unwrap(),
    );
    let tvd: f64 = p
        .iter()
        .map(|(k, v)| (v.as_f64().unwrap() - q.get(k).and_then(Value::as_f64).unwrap_or(0.0)).abs())
        .sum::<f64>()
        / 2.0;
    assert!(tvd < 1e-9, "TVD {tvd}");
    assert_eq!(cut["report"]["cuts"].as_array().unwrap().len(), 1);
    assert_eq!(cut["report"]["variants"], 7);
    assert!(cut["expectation"]["ZZZZZZZ"]["value"].is_f64());
}

#[test]
fn sampled_run_reports_error_bars() {
    let v = json(&quargo(&[
        "run",
        "examples/two_blocks.qasm",
        "--max-qubits",
        "4",
        "--shots",
        "2000",
        "--seed",
        "5",
        "--observable",
        "ZZZZZZZ",
        "--project",
    ]));
    assert_eq!(v["shots"], 2000);
    let probs = v["probabilities"].as_object().unwrap();
    let total: f64 = probs.values().map(|p| p.as_f64().unwrap()).sum();
    assert!(
        (total - 1.0).abs() < 1e-9,
        "projected distribution sums to {total}"
    );
    assert!(probs.values().all(|p| p.as_f64().unwrap() >= 0.0));
    assert!(v["stderr"].as_object().unwrap().len() == probs.len());
    assert!(v["expectation"]["ZZZZZZZ"]["stderr"].as_f64().unwrap() > 0.0);

    let out = quargo(&[
        "run",
        "examples/two_blocks.qasm",
        "--max-qubits",
        "4",
        "--observable",
        "ZZ",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has 2 qubits but the circuit has 7"));
}

#[test]
fn cut_prints_the_plan_run_reports_byte_for_byte() {
    let cut = quargo(&["cut", "examples/two_blocks.qasm", "--max-qubits", "4"]);
    let run = quargo(&[
        "run",
        "examples/two_blocks.qasm",
        "--max-qubits",
        "4",
        "--no-cache",
    ]);
    json(&cut);
    json(&run);
    // The same serde types print the plan in both outputs: the cuts and fragments are one text.
    let section = |out: &Output| -> String {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let start = text.find("\"cuts\":[").expect("cuts");
        let fragments = text.find("\"fragments\":[").expect("fragments");
        // Fragments hold arrays of numbers only, so the first `}],` closes the list.
        let end = text[fragments..].find("}],").expect("end of fragments") + fragments;
        text[start..end].to_string()
    };
    assert_eq!(section(&cut), section(&run));
}

#[test]
fn wide_distributions_are_refused_and_expectations_offered() {
    // Two 18-qubit blocks sharing one wire: 35 qubits, two 18-qubit fragments after one cut.
    let mut src = String::from("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[35];\n");
    for q in 0..17 {
        src += &format!("ry(0.{}) q[{q}];\ncx q[{q}], q[{}];\n", q % 9 + 1, q + 1);
    }
    for q in 17..34 {
        src += &format!("rx(0.{}) q[{q}];\ncx q[{q}], q[{}];\n", q % 9 + 1, q + 1);
    }
    let path = temp_qasm("two_wide_blocks.qasm", &src);
    let out = quargo(&["run", path.to_str().unwrap(), "--max-qubits", "18"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--no-probabilities"), "{err}");
    let z = "Z".repeat(35);
    let v = json(&quargo(&[
        "run",
        path.to_str().unwrap(),
        "--max-qubits",
        "18",
        "--no-probabilities",
        "--observable",
        &z,
    ]));
    assert_eq!(v["report"]["cuts"].as_array().unwrap().len(), 1);
    let value = v["expectation"][z.as_str()]["value"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&value));
    assert!(v.get("probabilities").is_none());
}

fn fresh_cache(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!("quargo-cli-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    format!("lmdb://{}", dir.display())
}

#[test]
fn a_second_run_simulates_nothing_and_stats_count_it() {
    let cache = fresh_cache("second-run");
    let args = [
        "run",
        "examples/two_blocks.qasm",
        "--max-qubits",
        "4",
        "--cache",
        &cache,
    ];
    let first = json(&quargo(&args));
    let second = json(&quargo(&args));
    let simulated = first["report"]["circuits_simulated"].as_u64().unwrap();
    assert!(simulated > 0);
    assert_eq!(first["report"]["cache_hits"], 0);
    assert_eq!(second["report"]["circuits_simulated"], 0);
    assert_eq!(second["report"]["cache_hits"].as_u64().unwrap(), simulated);
    assert_eq!(first["probabilities"], second["probabilities"]);
    // --no-cache computes everything again.
    let mut uncached = args.to_vec();
    uncached.push("--no-cache");
    let third = json(&quargo(&uncached));
    assert_eq!(
        third["report"]["circuits_simulated"].as_u64().unwrap(),
        simulated
    );

    let stats = json(&quargo(&["cache", "stats", "--cache", &cache]));
    assert_eq!(stats["entries"].as_u64().unwrap(), simulated);
    assert_eq!(stats["counters"]["hits"].as_u64().unwrap(), simulated);
    assert_eq!(stats["counters"]["misses"].as_u64().unwrap(), simulated);
    assert_eq!(stats["counters"]["collisions_rejected"], 0);
    assert!(stats["bytes"].as_u64().unwrap() > 0);
    let cleared = json(&quargo(&["cache", "clear", "--cache", &cache]));
    assert_eq!(cleared["removed"].as_u64().unwrap(), simulated);
    let stats = json(&quargo(&["cache", "stats", "--cache", &cache]));
    assert_eq!(stats["entries"], 0);
}

#[test]
fn simulate_hits_for_an_equivalent_circuit_written_differently() {
    let cache = fresh_cache("simulate-equivalent");
    let a = temp_qasm(
        "equiv_a.qasm",
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[3];\nh q[0]; z q[0]; h q[0];\nrz(0.3) q[2]; rz(0.4) q[2];\nh q[2]; cx q[0],q[1];\n",
    );
    let b = temp_qasm(
        "equiv_b.qasm",
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[3];\nrz(0.7) q[2];\nx q[0];\nh q[2];\ncx q[0],q[1];\n",
    );
    for file in [&a, &b] {
        let out = json(&quargo(&[
            "simulate",
            file.to_str().unwrap(),
            "--observable",
            "ZZI",
            "--cache",
            &cache,
        ]));
        assert!((out["probabilities"]["011"].as_f64().unwrap() - 0.5).abs() < 1e-12);
    }
    let stats = json(&quargo(&["cache", "stats", "--cache", &cache]));
    // Probabilities and <ZZI>: computed for a, proven hits for b.
    assert_eq!(stats["counters"]["misses"], 2);
    assert_eq!(stats["counters"]["hits"], 2);
    assert_eq!(stats["entries"], 2);
}

#[test]
fn several_processes_share_one_lmdb_directory_and_compute_each_variant_once() {
    let cache = fresh_cache("multi-process");
    let outputs = support::quargo_concurrently(
        &[
            "run",
            "examples/qaoa_ring8.qasm",
            "--max-qubits",
            "5",
            "--cache",
            &cache,
        ],
        4,
    );
    let simulated: u64 = outputs
        .iter()
        .map(|o| o["report"]["circuits_simulated"].as_u64().unwrap())
        .sum();
    let hits: u64 = outputs
        .iter()
        .map(|o| o["report"]["cache_hits"].as_u64().unwrap())
        .sum();
    let stats = json(&quargo(&["cache", "stats", "--cache", &cache]));
    let entries = stats["entries"].as_u64().unwrap();
    assert!(entries > 0);
    assert_eq!(
        simulated, entries,
        "each distinct variant computed exactly once"
    );
    assert_eq!(simulated + hits, 4 * entries);
    for o in &outputs[1..] {
        assert_eq!(o["probabilities"], outputs[0]["probabilities"]);
    }
}

#[test]
fn an_unreachable_redis_degrades_to_computing() {
    let direct = json(&quargo(&["simulate", "examples/ghz.qasm", "--no-cache"]));
    let out = quargo(&[
        "simulate",
        "examples/ghz.qasm",
        "--cache",
        "redis://127.0.0.1:1/0",
    ]);
    let value = json(&out);
    assert_eq!(value, direct);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cache degraded"), "stderr: {stderr}");
    let bad = quargo(&["simulate", "examples/ghz.qasm", "--cache", "memcached://x"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected lmdb://"));
}

fn fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure mentioning '{needle}'"
    );
    assert!(
        out.status.code().is_some(),
        "killed by a signal instead of failing: {stderr}"
    );
    assert!(stderr.contains(needle), "'{needle}' not in: {stderr}");
}

#[test]
fn reconstructions_too_expensive_are_refused_before_anything_is_allocated() {
    // 16 cuts (max-qubits 3) and 24 cuts (max-qubits 2): 4^16 and 4^24 label assignments.
    for (max_qubits, extra) in [
        ("3", vec![]),
        ("2", vec!["--no-probabilities", "--observable", "ZZIIIIII"]),
        ("3", vec!["--no-probabilities", "--observable", "ZZIIIIII"]),
    ] {
        let mut args = vec![
            "run",
            "examples/qaoa_ring8.qasm",
            "--max-qubits",
            max_qubits,
            "--no-cache",
        ];
        args.extend(extra);
        fails_with(&quargo(&args), "Pauli-label assignments");
    }
}

#[test]
fn hostile_inputs_get_clear_errors_not_crashes() {
    let long = vec!["1"; 200_000].join("+");
    for (name, body, needle) in [
        ("sum.qasm", format!("rx({long}) q[0];"), "operations"),
        (
            "product.qasm",
            format!("rx({}) q[0];", vec!["1"; 200_000].join("*")),
            "operations",
        ),
        (
            "nested.qasm",
            format!("rx({}1{}) q[0];", "(".repeat(100_000), ")".repeat(100_000)),
            "nested",
        ),
    ] {
        let path = temp_qasm(
            name,
            &format!("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\n{body}\n"),
        );
        fails_with(
            &quargo(&["simulate", path.to_str().unwrap(), "--no-cache"]),
            needle,
        );
    }
    for shots in ["0", "18446744073709551615", "1000000000001"] {
        fails_with(
            &quargo(&["simulate", "examples/bell.qasm", "--shots", shots]),
            "--shots",
        );
        fails_with(
            &quargo(&[
                "run",
                "examples/two_blocks.qasm",
                "--max-qubits",
                "4",
                "--shots",
                shots,
            ]),
            "--shots",
        );
    }
    fails_with(
        &quargo(&["simulate", "examples/bell.qasm", "--threads", "100000"]),
        "threads",
    );
    // An endless input is refused after a bounded read.
    fails_with(&quargo(&["simulate", "/dev/zero"]), "larger than");
}

#[test]
fn a_huge_angle_does_not_poison_the_identity() {
    let cache = fresh_cache("huge-angle");
    let huge = temp_qasm(
        "huge.qasm",
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\nrx(1e17) q[0];\n",
    );
    let plain = temp_qasm(
        "plain.qasm",
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\nid q[0];\n",
    );
    json(&quargo(&[
        "simulate",
        huge.to_str().unwrap(),
        "--cache",
        &cache,
    ]));
    let v = json(&quargo(&[
        "simulate",
        plain.to_str().unwrap(),
        "--cache",
        &cache,
    ]));
    assert_eq!(v["probabilities"], serde_json::json!({"0": 1.0}));
}

#[test]
fn a_damaged_lmdb_file_is_set_aside_and_clear_all_works_without_opening_it() {
    let dir = std::env::temp_dir().join(format!("quargo-cli-damaged-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let cache = format!("lmdb://{}", dir.display());
    let run = || {
        quargo(&[
            "run",
            "examples/qaoa_ring8.qasm",
            "--max-qubits",
            "5",
            "--cache",
            &cache,
        ])
    };
    let truth = json(&quargo(&[
        "run",
        "examples/qaoa_ring8.qasm",
        "--max-qubits",
        "5",
        "--no-cache",
    ]));
    json(&run());
    // 4 KiB of 0xFF over every third page past the meta pages.
    let damage = || {
        let path = dir.join("data.mdb");
        let mut bytes = std::fs::read(&path).expect("data.mdb");
        for page in (2..bytes.len() / 4096).step_by(3) {
            bytes[page * 4096..(page + 1) * 4096].fill(0xFF);
        }
        std::fs::write(&path, bytes).expect("damage");
    };
    damage();
    for _ in 0..2 {
        let v = json(&run());
        assert_eq!(v["probabilities"], truth["probabilities"]);
    }
    let aside = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("damaged")
        })
        .count();
    assert_eq!(aside, 1, "the damaged file is kept aside once");
    damage();
    json(&quargo(&["cache", "clear", "--all", "--cache", &cache]));
    assert!(!dir.join("data.mdb").exists());
    json(&run());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn worker_steps_walk_the_cutting_dag_through_the_store() {
    let cache = fresh_cache("worker");
    let outputs = std::env::temp_dir().join(format!("quargo-worker-out-{}", std::process::id()));
    std::fs::remove_dir_all(&outputs).ok();
    let out_dir = outputs.to_str().unwrap();
    let cut = json(&quargo(&[
        "worker",
        "cut",
        "--qasm-file",
        "examples/two_blocks.qasm",
        "--input",
        "maxQubits=4",
        "--input",
        r#"observables=["ZZZZZZZ"]"#,
        "--input",
        "batchSize=3",
        "--outputs",
        out_dir,
        "--cache",
        &cache,
    ]));
    // The output parameters are files, as Argo's valueFrom.path reads them, and match the JSON.
    let plan = std::fs::read_to_string(outputs.join("plan")).unwrap();
    assert!(plan.starts_with("p/"), "{plan}");
    assert!(cut["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "plan" && p["value"] == plan.as_str()));
    let batches: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(outputs.join("result")).unwrap()).unwrap();
    assert!(batches.len() > 1, "{batches:?}");
    let simulate = |batch: &str| -> Value {
        let out = json(&quargo(&[
            "worker", "simulate", "--batch", batch, "--cache", &cache,
        ]));
        serde_json::from_str(out["result"].as_str().unwrap()).unwrap()
    };
    let simulated: u64 = batches
        .iter()
        .map(|b| simulate(b)["simulated"].as_u64().unwrap())
        .sum();
    assert!(simulated > 0);
    // A rerun of a step (Argo retried it) computes nothing again.
    assert_eq!(simulate(&batches[0])["simulated"], 0);
    let rec = json(&quargo(&[
        "worker",
        "reconstruct",
        "--plan",
        &plan,
        "--cache",
        &cache,
    ]));
    let summary: Value = serde_json::from_str(rec["result"].as_str().unwrap()).unwrap();
    let direct = json(&quargo(&[
        "simulate",
        "examples/two_blocks.qasm",
        "--observable",
        "ZZZZZZZ",
        "--no-cache",
    ]));
    let got = summary["expectation"]["ZZZZZZZ"]["value"].as_f64().unwrap();
    let want = direct["expectation"]["ZZZZZZZ"]["value"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    std::fs::remove_dir_all(&outputs).ok();
}

#[test]
fn worker_failures_exit_with_a_reason_and_a_retry_code_for_the_store() {
    let cache = fresh_cache("worker-fail");
    let out = quargo(&[
        "worker",
        "reconstruct",
        "--plan",
        "p/0000",
        "--cache",
        &cache,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("plan 'p/0000' is not in the store"), "{err}");
    let out = quargo(&[
        "worker",
        "simulate",
        "--qasm-file",
        "examples/bell.qasm",
        "--input",
        "maxQubit=3",
        "--cache",
        &cache,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown input 'maxQubit'"));
    // A store that cannot be reached is worth a retry: exit 75, not a failed step.
    let dead = format!(
        "redis://127.0.0.1:{}/0",
        crate::support::redis_server::free_port()
    );
    let out = quargo(&[
        "worker",
        "simulate",
        "--qasm-file",
        "examples/bell.qasm",
        "--cache",
        &dead,
    ]);
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_worker_stops_at_its_next_step_on_sigterm_and_asks_for_a_retry() {
    // 24 qubits, 3,000 gates: seconds of work, so the signal lands mid-simulation.
    let mut qasm = String::from("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[24];\n");
    for layer in 0..125 {
        for q in 0..24 {
            let gate = match (layer + q) % 3 {
                0 => format!("h q[{q}];\n"),
                1 => format!("rz({}) q[{q}];\n", 0.1 + q as f64 * 0.01),
                _ => format!("cx q[{q}], q[{}];\n", (q + 1) % 24),
            };
            qasm.push_str(&gate);
        }
    }
    let file = std::env::temp_dir().join(format!("quargo-sigterm-{}.qasm", std::process::id()));
    std::fs::write(&file, qasm).unwrap();
    let cache = fresh_cache("sigterm");
    let child = Command::new(env!("CARGO_BIN_EXE_quargo"))
        .args(["worker", "simulate", "--qasm-file"])
        .arg(&file)
        .args(["--input", r#"observables=["ZZZZZZZZZZZZZZZZZZZZZZZZ"]"#])
        .args(["--cache", &cache, "--threads", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    let sent = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("stopped by SIGTERM"), "{err}");
    assert!(out.stdout.is_empty());
    // Stopped mid-simulation: no result (partial or not) was written under a key.
    let stats = json(&quargo(&["cache", "stats", "--cache", &cache]));
    assert_eq!(stats["entries"], 0, "{stats}");
    std::fs::remove_file(&file).ok();
}

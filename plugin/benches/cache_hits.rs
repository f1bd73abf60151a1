//! Cache hit rate and speed-up on cutting runs (part of `make bench-cache`).
//!
//! Workloads: the two-block circuit with k shared wires (k = 1..4 cuts) and repeated runs of two
//! cutting jobs. Each is run by W concurrent workers (1, 2, 8; each a thread with its own cache
//! client and a one-thread simulator, as separate pods would be) with no cache, then with a cold
//! cache and again warm, on LMDB and on Redis (a `redis-server` this bench starts).
//! Times are wall-clock for all W workers to finish; hit rate = results not simulated / looked up.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its figures on stdout"
)]

use quargo::cache::{Cache, CacheOptions};
use quargo::circuit::Circuit;
use quargo::pipeline::{self, RunSpec};
use quargo::sim::Simulator;
use quargo::store::{lmdb::LmdbStore, redis::RedisStore, Store};
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;
use redis_server::RedisServer;

/// Block A on qubits 0..a+k, block B on the last k of those plus b more, each block entangling
/// all its pairs: k wire cuts split them.
fn two_blocks(a: usize, b: usize, k: usize, seed: u64) -> Circuit {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut src = format!(
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{}];\n",
        a + k + b
    );
    let mut block = |qubits: std::ops::Range<usize>, src: &mut String| {
        for _ in 0..2 {
            for q in qubits.clone() {
                src.push_str(&format!("ry({:.6}) q[{q}];\n", rng.random_range(-3.1..3.1)));
                src.push_str(&format!("rz({:.6}) q[{q}];\n", rng.random_range(-3.1..3.1)));
            }
            // All pairs: no cheaper split exists than the k shared wires.
            for a in qubits.clone() {
                for b in a + 1..qubits.end {
                    src.push_str(&format!("cx q[{a}], q[{b}];\n"));
                }
            }
        }
    };
    block(0..a + k, &mut src);
    block(a..a + k + b, &mut src);
    quargo::qasm::parse(&src).expect("generated circuit parses")
}

fn hardware_efficient(n: usize, reps: usize, seed: u64) -> Circuit {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut src = format!("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{n}];\n");
    for r in 0..=reps {
        for q in 0..n {
            src.push_str(&format!("ry({:.6}) q[{q}];\n", rng.random_range(-3.1..3.1)));
            src.push_str(&format!("rz({:.6}) q[{q}];\n", rng.random_range(-3.1..3.1)));
        }
        if r < reps {
            for q in 0..n - 1 {
                src.push_str(&format!("cx q[{q}], q[{}];\n", q + 1));
            }
        }
    }
    quargo::qasm::parse(&src).expect("generated circuit parses")
}

#[derive(Clone)]
enum Backend {
    None,
    Lmdb(PathBuf),
    Redis(String),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::None => "none",
            Backend::Lmdb(_) => "LMDB",
            Backend::Redis(_) => "Redis",
        }
    }

    fn store(&self) -> Option<Arc<dyn Store>> {
        match self {
            Backend::None => None,
            Backend::Lmdb(dir) => Some(Arc::new(LmdbStore::open(dir, 2 << 30).expect("lmdb"))),
            Backend::Redis(url) => Some(Arc::new(
                RedisStore::open(url, Default::default()).expect("redis"),
            )),
        }
    }
}

struct Round {
    seconds: f64,
    simulated: usize,
    looked_up: usize,
}

/// W workers run the job once each, concurrently. Wide circuits reconstruct <Z...Z> only.
fn round(circuit: &Circuit, max_qubits: usize, backend: &Backend, workers: usize) -> Round {
    let n = circuit.num_qubits();
    let wide = n > 16;
    let z_all = "Z".repeat(n);
    let spec = RunSpec {
        seed: Some(1),
        observables: if wide { vec![z_all] } else { Vec::new() },
        probabilities: !wide,
        ..RunSpec::new(max_qubits)
    };
    let options = spec.resolve(n).expect("a valid spec");
    let started = Instant::now();
    let reports: Vec<(usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let options = options.clone();
                s.spawn(move || {
                    let sim = Simulator::new().with_threads(1).expect("simulator");
                    let cache = backend
                        .store()
                        .map(|store| Cache::new(store, CacheOptions::default()));
                    let out = pipeline::run(circuit, &options, &sim, cache.as_ref(), &|_, _| {})
                        .expect("run");
                    let r = out.report;
                    (r.circuits_simulated, r.circuits_simulated + r.cache_hits)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect()
    });
    Round {
        seconds: started.elapsed().as_secs_f64(),
        simulated: reports.iter().map(|r| r.0).sum(),
        looked_up: reports.iter().map(|r| r.1).sum(),
    }
}

/// Best of three, or the first alone when it took more than two seconds.
fn best_of(reps: usize, mut f: impl FnMut() -> Round) -> Round {
    let mut best: Option<Round> = None;
    for rep in 0..reps {
        if rep > 0 && best.as_ref().is_some_and(|b| b.seconds > 2.0) {
            break;
        }
        let r = f();
        if best.as_ref().is_none_or(|b| r.seconds < b.seconds) {
            best = Some(r);
        }
    }
    best.expect("at least one repetition")
}

fn clear(backend: &Backend) {
    if let Some(store) = backend.store() {
        store.clear("").expect("clear");
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let redis = RedisServer::start();
    let lmdb_dir = std::env::temp_dir().join(format!("quargo-bench-cache-{}", std::process::id()));
    std::fs::remove_dir_all(&lmdb_dir).ok();
    let backends = [Backend::Lmdb(lmdb_dir.clone()), Backend::Redis(redis.url())];
    let mut jobs: Vec<(String, Circuit, usize)> = (1..=4)
        .map(|k| {
            (
                format!("two-block k={k} ({}q, M={}, <Z..Z>)", 20 + k, 10 + k),
                two_blocks(10, 10, k, k as u64),
                10 + k,
            )
        })
        .collect();
    jobs.push((
        "QAOA ring 8, M=5".into(),
        quargo::qasm::parse_file(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/qaoa_ring8.qasm"
        )))
        .expect("example"),
        5,
    ));
    jobs.push((
        "HEA linear 16q reps 2, M=8".into(),
        hardware_efficient(16, 2, 3),
        8,
    ));

    println!("| job | cuts | store | workers | no cache s | cold s | warm s | cold speed-up | warm speed-up | cold hit rate | warm hit rate | simulated cold (all workers) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, circuit, max_qubits) in &jobs {
        let cuts = quargo::cut::find_cuts(circuit, quargo::cut::FindOptions::new(*max_qubits))
            .expect("plan")
            .cuts
            .len();
        for workers in [1, 2, 8] {
            let none = best_of(3, || round(circuit, *max_qubits, &Backend::None, workers));
            for backend in &backends {
                let cold = best_of(3, || {
                    clear(backend);
                    round(circuit, *max_qubits, backend, workers)
                });
                let warm = best_of(3, || round(circuit, *max_qubits, backend, workers));
                let rate = |r: &Round| 1.0 - r.simulated as f64 / r.looked_up.max(1) as f64;
                println!(
                    "| {name} | {cuts} | {} | {workers} | {:.3} | {:.3} | {:.3} | {:.2}x | {:.1}x | {:.1}% | {:.1}% | {} of {} |",
                    backend.name(),
                    none.seconds,
                    cold.seconds,
                    warm.seconds,
                    none.seconds / cold.seconds,
                    none.seconds / warm.seconds,
                    100.0 * rate(&cold),
                    100.0 * rate(&warm),
                    cold.simulated,
                    cold.looked_up,
                );
            }
        }
    }
    std::fs::remove_dir_all(&lmdb_dir).ok();
}

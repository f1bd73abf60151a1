//! Cache behaviour on the embedded store: proof before hit, keys that separate contexts, damage
//! tolerated, single-flight across threads, degradation on a dead store.

use super::*;
use crate::store::lmdb::LmdbStore;
use crate::store::redis::{RedisOptions, RedisStore};
use quargo_science::qasm::parse;
use std::sync::atomic::AtomicUsize;

fn circuit(body: &str, n: usize) -> Circuit {
    parse(&format!(
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{n}];\n{body}"
    ))
    .expect("test circuit parses")
}

fn temp_cache(options: CacheOptions) -> (Cache, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "quargo-cache-test-{}-{}",
        std::process::id(),
        blake3::hash(
            format!(
                "{:?}{:?}",
                std::time::Instant::now(),
                std::thread::current().id()
            )
            .as_bytes()
        )
        .to_hex()
    ));
    let store: Arc<dyn Store> = Arc::new(LmdbStore::open(&dir, 64 << 20).expect("open"));
    (Cache::new(store, options), dir)
}

fn probs(c: &Circuit) -> Result<Vec<f64>, String> {
    let sim = quargo_science::sim::Simulator::new();
    Ok(sim
        .run(c)
        .map_err(|e| e.to_string())?
        .probabilities()
        .to_vec())
}

#[test]
fn an_equivalent_circuit_hits_and_a_different_one_misses() {
    let (cache, dir) = temp_cache(CacheOptions::default());
    let kind = ResultKind::Probabilities;
    let a = circuit("h q[0]; z q[0]; h q[0]; cx q[0],q[1];", 2);
    let (pa, src) = cache.get_or_compute(&a, &kind, || probs(&a)).expect("a");
    assert_eq!(src, Source::Computed);
    // x = h z h, written differently: a proven hit, the same probabilities.
    let b = circuit("x q[0]; cx q[0],q[1];", 2);
    let (pb, src): (Vec<f64>, _) = cache
        .get_or_compute(&b, &kind, || Err("must not compute".to_string()))
        .expect("b");
    assert_eq!(src, Source::Hit);
    assert_eq!(pa, pb);
    // x on the other qubit is another circuit.
    let c = circuit("x q[1]; cx q[0],q[1];", 2);
    let (pc, src) = cache.get_or_compute(&c, &kind, || probs(&c)).expect("c");
    assert_eq!(src, Source::Computed);
    assert_ne!(pa, pc);
    assert_eq!(cache.local_count(Event::Hit), 1);
    assert_eq!(cache.local_count(Event::Miss), 2);
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn every_context_field_separates_keys() {
    let kinds = [
        ResultKind::Probabilities,
        ResultKind::Expectation {
            observable: "ZZ".into(),
        },
        ResultKind::Expectation {
            observable: "XZ".into(),
        },
        ResultKind::Counts {
            shots: 100,
            seed_policy: "seed=1".into(),
        },
        ResultKind::Counts {
            shots: 100,
            seed_policy: "seed=2".into(),
        },
        ResultKind::Counts {
            shots: 101,
            seed_policy: "seed=1".into(),
        },
        ResultKind::QpuCounts {
            backend: "a".into(),
            calibration_epoch: "e1".into(),
            shots: 100,
        },
        ResultKind::QpuCounts {
            backend: "a".into(),
            calibration_epoch: "e2".into(),
            shots: 100,
        },
        ResultKind::QpuCounts {
            backend: "b".into(),
            calibration_epoch: "e1".into(),
            shots: 100,
        },
        // Field boundaries cannot be shifted to fake another key.
        ResultKind::QpuCounts {
            backend: "a;1".into(),
            calibration_epoch: "e".into(),
            shots: 100,
        },
    ];
    let keys: HashSet<String> = kinds.iter().map(|k| result_key("d", k).store).collect();
    assert_eq!(keys.len(), kinds.len());
    assert_ne!(
        result_key("d1", &ResultKind::Probabilities).store,
        result_key("d2", &ResultKind::Probabilities).store
    );
}

#[test]
fn a_damaged_value_is_a_miss_and_is_recomputed() {
    let (cache, dir) = temp_cache(CacheOptions::default());
    let kind = ResultKind::Probabilities;
    let a = circuit("h q[0];", 1);
    let (good, _) = cache.get_or_compute(&a, &kind, || probs(&a)).expect("a");
    let id = cache.circuit_id(&a).expect("id");
    let key = result_key(&id.digest, &kind);
    let mut bytes = cache.store().get(&key.store).expect("get").expect("stored");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    cache.store().put(&key.store, &bytes).expect("put");
    let (again, src) = cache.get_or_compute(&a, &kind, || probs(&a)).expect("a");
    assert_eq!(src, Source::Computed);
    assert_eq!(again, good);
    assert_eq!(cache.local_count(Event::Corrupt), 1);
    // A truncated value too.
    cache.store().put(&key.store, &bytes[..20]).expect("put");
    let (_, src) = cache.get_or_compute(&a, &kind, || probs(&a)).expect("a");
    assert_eq!(src, Source::Computed);
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn an_entry_whose_graph_is_not_proven_equal_is_rejected() {
    let (cache, dir) = temp_cache(CacheOptions::default());
    let kind = ResultKind::Probabilities;
    let a = circuit("x q[0];", 2);
    let b = circuit("x q[1];", 2);
    let (id_a, id_b) = (
        cache.circuit_id(&a).expect("a"),
        cache.circuit_id(&b).expect("b"),
    );
    // Forge a collision: b's graph and a wrong answer stored under a's key.
    let key = result_key(&id_a.digest, &kind);
    let proof = id::encode_proof(&id_b.graph.to_bytes(), &id_b.precision);
    let forged = codec::seal(&key.text, &proof, &vec![0.0, 0.0, 1.0, 0.0].encode());
    cache.store().put(&key.store, &forged).expect("put");
    let (p, src) = cache.get_or_compute(&a, &kind, || probs(&a)).expect("a");
    assert_eq!(src, Source::Computed);
    assert_eq!(p, vec![0.0, 1.0, 0.0, 0.0]);
    assert_eq!(cache.local_count(Event::CollisionRejected), 1);
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn concurrent_misses_compute_once() {
    let (cache, dir) = temp_cache(CacheOptions::default());
    let computed = AtomicUsize::new(0);
    let a = circuit("h q[0]; cx q[0],q[1]; rz(0.3) q[1];", 2);
    let results: Vec<(Vec<f64>, Source)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    cache
                        .get_or_compute(&a, &ResultKind::Probabilities, || {
                            computed.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(300));
                            probs(&a)
                        })
                        .expect("result")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(computed.load(Ordering::SeqCst), 1);
    assert!(results.iter().all(|(p, _)| *p == results[0].0));
    assert_eq!(
        results
            .iter()
            .filter(|(_, s)| *s == Source::Computed)
            .count(),
        1
    );
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn when_the_lease_holder_fails_a_waiter_computes() {
    let (cache, dir) = temp_cache(CacheOptions::default());
    let a = circuit("h q[0];", 1);
    let attempts = AtomicUsize::new(0);
    let outcomes: Vec<Result<(Vec<f64>, Source), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    cache.get_or_compute(&a, &ResultKind::Probabilities, || {
                        std::thread::sleep(Duration::from_millis(200));
                        if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                            Err("first worker fails".to_string())
                        } else {
                            probs(&a)
                        }
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(outcomes.iter().filter(|o| o.is_err()).count(), 1);
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_waiter_whose_holder_outlives_max_wait_computes_itself() {
    let (cache, dir) = temp_cache(CacheOptions {
        lease_ttl: Duration::from_secs(30),
        max_wait: Duration::from_millis(200),
        ..Default::default()
    });
    let a = circuit("h q[0];", 1);
    let id = cache.circuit_id(&a).expect("id");
    let key = result_key(&id.digest, &ResultKind::Probabilities);
    // A live holder (this process) that never finishes.
    assert!(cache
        .store()
        .try_lease(&key.store, "stuck-worker", Duration::from_secs(30))
        .expect("lease"));
    let started = Instant::now();
    let (p, src) = cache
        .get_or_compute(&a, &ResultKind::Probabilities, || probs(&a))
        .expect("a");
    assert_eq!(src, Source::Computed);
    assert!((p[0] - 0.5).abs() < 1e-12);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(cache.local_count(Event::WaitTimeout), 1);
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_dead_store_degrades_to_computing() {
    let store: Arc<dyn Store> = Arc::new(
        RedisStore::open(
            "redis://127.0.0.1:1/0",
            RedisOptions {
                op_timeout: Duration::from_millis(200),
                connect_timeout: Duration::from_millis(100),
                ..Default::default()
            },
        )
        .expect("lazy open"),
    );
    let cache = Cache::new(store, CacheOptions::default());
    let a = circuit("h q[0]; cx q[0],q[1];", 2);
    let (p, src) = cache
        .get_or_compute(&a, &ResultKind::Probabilities, || probs(&a))
        .expect("computed despite the store");
    assert_eq!(src, Source::Computed);
    assert!((p[0] - 0.5).abs() < 1e-12 && (p[3] - 0.5).abs() < 1e-12);
    assert!(cache.local_count(Event::StoreError) >= 1);
}

#[test]
fn stats_and_clear() {
    let (cache, dir) = temp_cache(CacheOptions::default());
    let a = circuit("h q[0];", 1);
    cache
        .get_or_compute(&a, &ResultKind::Probabilities, || probs(&a))
        .expect("a");
    cache
        .get_or_compute(&a, &ResultKind::Probabilities, || probs(&a))
        .expect("a");
    let stats = cache.stats().expect("stats");
    assert_eq!(stats.store.entries, 1);
    assert!(stats.store.bytes > 16);
    assert_eq!(stats.store.counters["hits"], 1);
    assert_eq!(stats.store.counters["misses"], 1);
    assert_eq!(stats.memo_entries, 1);
    assert_eq!(cache.clear().expect("clear"), 1);
    let stats = cache.stats().expect("stats");
    assert_eq!((stats.store.entries, stats.memo_entries), (0, 0));
    assert_eq!(stats.store.counters["hits"], 0);
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_batch_computes_each_semantic_id_once_and_reuses_hits() {
    let (cache, dir) = temp_cache(CacheOptions::default());
    let kind = ResultKind::Probabilities;
    let x = circuit("x q[0]; cx q[0],q[1];", 2);
    let hzh = circuit("h q[0]; z q[0]; h q[0]; cx q[0],q[1];", 2);
    let other = circuit("h q[1];", 2);
    let computed = AtomicUsize::new(0);
    let batch = [&x, &hzh, &other];
    let first = cache
        .get_or_compute_many(&batch, &kind, |i| {
            computed.fetch_add(1, Ordering::SeqCst);
            probs(batch[i])
        })
        .expect("batch");
    // x and h;z;h share an ID: computed once, the twin served from it.
    assert_eq!(computed.load(Ordering::SeqCst), 2);
    assert_eq!(first[0].0, first[1].0);
    assert_eq!(first[0].0, probs(&x).expect("direct"));
    assert_eq!(first[2].0, probs(&other).expect("direct"));
    let again: Vec<(Vec<f64>, Source)> = cache
        .get_or_compute_many(&batch, &kind, |_| Err("must not compute".to_string()))
        .expect("all hits");
    assert!(again.iter().all(|(_, s)| *s == Source::Hit));
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_failing_batch_still_stores_what_succeeded() {
    let (cache, dir) = temp_cache(CacheOptions::default());
    let kind = ResultKind::Probabilities;
    let a = circuit("h q[0];", 1);
    let b = circuit("x q[0];", 1);
    let batch = [&a, &b];
    let err = cache.get_or_compute_many(&batch, &kind, |i| {
        if i == 1 {
            Err("b fails".to_string())
        } else {
            probs(batch[i])
        }
    });
    assert_eq!(err.err().as_deref(), Some("b fails"));
    let (_, source): (Vec<f64>, _) = cache
        .get_or_compute(&a, &kind, || Err("a was stored".to_string()))
        .expect("a hit");
    assert_eq!(source, Source::Hit);
    // b's lease was released: computing it now does not wait.
    let (_, source) = cache.get_or_compute(&b, &kind, || probs(&b)).expect("b");
    assert_eq!(source, Source::Computed);
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_full_lmdb_map_degrades_to_computing() {
    // A 1 MiB map cannot hold an 18-qubit probability vector (2 MiB).
    let dir = std::env::temp_dir().join(format!("quargo-cache-full-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let store: Arc<dyn Store> = Arc::new(LmdbStore::open(&dir, 1 << 20).expect("open"));
    let cache = Cache::new(store, CacheOptions::default());
    let wide = circuit("h q[0]; h q[17];", 18);
    let (p, source) = cache
        .get_or_compute(&wide, &ResultKind::Probabilities, || probs(&wide))
        .expect("an answer despite the full store");
    assert_eq!(source, Source::Computed);
    assert!((p[0] - 0.25).abs() < 1e-12);
    assert!(cache.local_count(Event::StoreError) >= 1);
    // The store still works for what fits.
    let small = circuit("x q[0];", 1);
    cache
        .get_or_compute(&small, &ResultKind::Probabilities, || probs(&small))
        .expect("small");
    let (_, source) = cache
        .get_or_compute(&small, &ResultKind::Probabilities, || probs(&small))
        .expect("small again");
    assert_eq!(source, Source::Hit);
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn lookup_many_finds_proven_hits_and_never_computes() {
    let (cache, dir) = temp_cache(CacheOptions::default());
    let kind = ResultKind::Probabilities;
    let x = circuit("x q[0];", 2);
    let hzh = circuit("h q[0]; z q[0]; h q[0];", 2);
    let other = circuit("x q[1];", 2);
    assert!(cache
        .lookup_many::<Vec<f64>>(&[&x, &other], &kind)
        .iter()
        .all(Option::is_none));
    cache.get_or_compute(&x, &kind, || probs(&x)).expect("x");
    let found = cache.lookup_many::<Vec<f64>>(&[&hzh, &other, &x], &kind);
    assert_eq!(found[0].as_deref(), Some(&probs(&x).expect("direct")[..]));
    assert!(found[1].is_none());
    assert!(found[2].is_some());
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn lookup_kinds_is_all_or_nothing() {
    let (cache, dir) = temp_cache(CacheOptions::default());
    let bell = circuit("h q[0]; cx q[0],q[1];", 2);
    let zz = ResultKind::Expectation {
        observable: "ZZ".into(),
    };
    let kinds = [ResultKind::Probabilities, zz.clone()];
    assert!(cache.lookup_kinds(&bell, &kinds).is_none());
    cache
        .get_or_compute(&bell, &ResultKind::Probabilities, || probs(&bell))
        .expect("probabilities");
    assert!(
        cache.lookup_kinds(&bell, &kinds).is_none(),
        "<ZZ> is missing"
    );
    cache
        .get_or_compute(&bell, &zz, || Ok::<f64, String>(1.0))
        .expect("zz");
    let values = cache.lookup_kinds(&bell, &kinds).expect("both cached");
    assert_eq!(
        Vec::<f64>::decode(&values[0]),
        Some(probs(&bell).expect("direct"))
    );
    assert_eq!(f64::decode(&values[1]), Some(1.0));
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

fn exact(c: &Circuit) -> Vec<f64> {
    probs(c).expect("simulates")
}

fn max_difference(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn a_huge_angle_never_answers_for_the_identity() {
    // rx(1e17) lands on the identity's grid point (θ/π has no fraction left in f64), but its
    // error bound is as large as the angle: it may only hit itself.
    let (cache, dir) = temp_cache(CacheOptions::default());
    let kind = ResultKind::Probabilities;
    for (huge, plain) in [
        ("rx(1e17) q[0];", "id q[0];"),
        ("rz(1e17) q[0]; h q[0];", "h q[0];"),
        ("ry(-3e16) q[0];", "id q[0];"),
        (
            "h q[0]; cx q[0],q[1]; crz(1e18) q[0],q[1];",
            "h q[0]; cx q[0],q[1];",
        ),
    ] {
        let (a, b) = (circuit(huge, 2), circuit(plain, 2));
        let (pa, _) = cache.get_or_compute(&a, &kind, || probs(&a)).expect("a");
        let (pb, src) = cache.get_or_compute(&b, &kind, || probs(&b)).expect("b");
        assert_eq!(src, Source::Computed, "{plain} after {huge}");
        assert_eq!(pa, exact(&a));
        assert_eq!(pb, exact(&b));
    }
    assert!(cache.local_count(Event::ToleranceRejected) >= 1);
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

/// `h; 2048 x (rz(pi/4096 + offset); cx; cx); h` on two qubits.
fn drift_circuit(offset: f64) -> Circuit {
    let body: String = (0..2048)
        .map(|_| format!("rz(pi/4096 + {offset:e}) q[0]; cx q[0],q[1]; cx q[0],q[1];\n"))
        .collect();
    circuit(&format!("h q[0];\n{body}h q[0];"), 2)
}

#[test]
fn rounding_that_adds_up_across_gates_is_not_served() {
    let (cache, dir) = temp_cache(CacheOptions::default());
    let kind = ResultKind::Probabilities;
    let a = drift_circuit(0.0);
    let b = drift_circuit(3.5e-10);
    let (ida, idb) = (
        cache.circuit_id(&a).expect("a"),
        cache.circuit_id(&b).expect("b"),
    );
    assert_eq!(ida.digest, idb.digest, "one grid circuit: the IDs agree");
    cache.get_or_compute(&a, &kind, || probs(&a)).expect("a");
    let (pb, src) = cache.get_or_compute(&b, &kind, || probs(&b)).expect("b");
    assert_eq!(src, Source::Computed);
    assert!(
        max_difference(&pb, &exact(&a)) > 1e-7,
        "the two answers differ for real"
    );
    assert_eq!(pb, exact(&b));
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn the_tolerance_is_honoured_at_its_edge() {
    // One rotation 1e-12 rad off: the bound is 2 * 1e-12 (plus float error ~1e-15).
    let a = circuit("h q[0]; rz(0.7) q[0]; h q[0];", 1);
    let b = circuit("h q[0]; rz(0.700000000001) q[0]; h q[0];", 1);
    let kind = ResultKind::Probabilities;
    for (tolerance, hit) in [
        (2.1e-12, true),
        (1.9e-12, false),
        (1e-9, true),
        (0.0, false),
    ] {
        let (cache, dir) = temp_cache(CacheOptions {
            tolerance,
            ..Default::default()
        });
        cache.get_or_compute(&a, &kind, || probs(&a)).expect("a");
        let (pb, src) = cache.get_or_compute(&b, &kind, || probs(&b)).expect("b");
        assert_eq!(src == Source::Hit, hit, "tolerance {tolerance}");
        assert!(
            max_difference(&pb, &exact(&b)) <= tolerance.max(1e-15),
            "tolerance {tolerance}"
        );
        drop(cache);
        std::fs::remove_dir_all(dir).ok();
    }
    // With a zero tolerance only circuits without rotations (no rounding at all) hit.
    let (cache, dir) = temp_cache(CacheOptions {
        tolerance: 0.0,
        ..Default::default()
    });
    let c = circuit("h q[0]; cx q[0],q[1]; h q[1];", 2);
    cache
        .get_or_compute(&c, &kind, || probs(&c))
        .expect("first");
    let (_, src) = cache
        .get_or_compute(&c, &kind, || probs(&c))
        .expect("second");
    assert_eq!(src, Source::Hit);
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn equivalent_rewrites_still_hit() {
    let (cache, dir) = temp_cache(CacheOptions::default());
    let kind = ResultKind::Probabilities;
    for (first, second) in [
        ("h q[0]; z q[0]; h q[0];", "x q[0];"),
        (
            "rz(0.3) q[0]; rz(0.4) q[0]; h q[0];",
            "rz(0.7) q[0]; h q[0];",
        ),
        (
            "h q[0]; cx q[0],q[1]; rx(1.234) q[1];",
            "h q[0]; cx q[0],q[1]; rx(1.234) q[1];",
        ),
    ] {
        let (a, b) = (circuit(first, 2), circuit(second, 2));
        cache.get_or_compute(&a, &kind, || probs(&a)).expect("a");
        let (pb, src) = cache.get_or_compute(&b, &kind, || probs(&b)).expect("b");
        assert_eq!(src, Source::Hit, "{second} after {first}");
        assert!(max_difference(&pb, &exact(&b)) <= 1e-9);
    }
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

mod shared_cache_property {
    //! A shared cache never changes an answer beyond the tolerance: random circuits, many with
    //! extreme or nearly equal angles, are asked through one cache after their neighbours, and
    //! every answer is compared with a direct simulation.
    use super::*;
    use proptest::prelude::*;

    fn angle() -> impl Strategy<Value = f64> {
        prop_oneof![
            (-7.0f64..7.0),
            (-1e18f64..1e18),
            Just(1e17),
            Just(-1e17),
            (0u32..16).prop_map(|k| std::f64::consts::PI / f64::from(1 << k)),
            (0u32..16, -1e-9f64..1e-9)
                .prop_map(|(k, e)| std::f64::consts::PI / f64::from(1 << k) + e),
        ]
    }

    fn gate() -> impl Strategy<Value = String> {
        prop_oneof![
            (0usize..3, angle()).prop_map(|(q, t)| format!("rx({t:e}) q[{q}];")),
            (0usize..3, angle()).prop_map(|(q, t)| format!("rz({t:e}) q[{q}];")),
            (0usize..3, angle()).prop_map(|(q, t)| format!("ry({t:e}) q[{q}];")),
            (0usize..3, angle(), angle(), angle())
                .prop_map(|(q, a, b, c)| format!("u3({a:e},{b:e},{c:e}) q[{q}];")),
            (0usize..3).prop_map(|q| format!("h q[{q}];")),
            (0usize..3).prop_map(|q| format!("id q[{q}];")),
            (0usize..3, 1usize..3).prop_map(|(a, d)| format!("cx q[{a}],q[{}];", (a + d) % 3)),
            (0usize..3, 1usize..3, angle())
                .prop_map(|(a, d, t)| format!("crz({t:e}) q[{a}],q[{}];", (a + d) % 3)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn no_answer_moves_beyond_the_tolerance(
            circuits in proptest::collection::vec(proptest::collection::vec(gate(), 0..8), 2..6),
        ) {
            let (cache, dir) = temp_cache(CacheOptions::default());
            let kind = ResultKind::Probabilities;
            for gates in &circuits {
                // The circuit, and a neighbour whose angles differ in the last digits.
                let body = gates.join(" ");
                for c in [circuit(&body, 3), circuit(&body.replace("e0", "000001e0"), 3)] {
                    let (p, _) = cache.get_or_compute(&c, &kind, || probs(&c)).expect("answer");
                    let truth = exact(&c);
                    prop_assert!(max_difference(&p, &truth) <= DEFAULT_TOLERANCE + 1e-12,
                        "{body}: {:?} vs {:?}", p, truth);
                }
            }
            drop(cache);
            std::fs::remove_dir_all(dir).ok();
        }
    }
}

#[test]
fn deep_circuits_get_ids_and_proven_hits() {
    // A path thousands of spiders long: refinement is capped, the proof settles the hit.
    let (cache, dir) = temp_cache(CacheOptions::default());
    let kind = ResultKind::Probabilities;
    let a = circuit(&"h q[0]; t q[0]; cx q[0],q[1]; ".repeat(3000), 2);
    let b = circuit(&"h q[0]; rz(pi/4) q[0]; cx q[0],q[1]; ".repeat(3000), 2);
    cache.get_or_compute(&a, &kind, || probs(&a)).expect("a");
    let (pb, src) = cache.get_or_compute(&b, &kind, || probs(&b)).expect("b");
    assert_eq!(src, Source::Hit);
    assert!(max_difference(&pb, &exact(&b)) <= 1e-9);
    let c = circuit(&"h q[0]; tdg q[0]; cx q[0],q[1]; ".repeat(3000), 2);
    let (_, src) = cache.get_or_compute(&c, &kind, || probs(&c)).expect("c");
    assert_eq!(src, Source::Computed, "a different circuit misses");
    drop(cache);
    std::fs::remove_dir_all(dir).ok();
}

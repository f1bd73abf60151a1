//! The cache on a real Redis server (`redis-server` from the distribution, started here on a free
//! loopback port): the store contract, single-flight across threads and processes, and a Redis
//! that is killed and restarted in the middle of a run.

use quargo::cache::{Cache, CacheOptions, Event, ResultKind, Source};
use quargo::circuit::Circuit;
use quargo::store::redis::{RedisOptions, RedisStore};
use quargo::store::Store;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support;
use support::redis_server::RedisServer;

fn store(url: &str) -> Arc<dyn Store> {
    Arc::new(
        RedisStore::open(
            url,
            RedisOptions {
                op_timeout: Duration::from_millis(500),
                connect_timeout: Duration::from_millis(200),
                ..Default::default()
            },
        )
        .expect("open"),
    )
}

fn circuit(body: &str, n: usize) -> Circuit {
    quargo::qasm::parse(&format!(
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{n}];\n{body}"
    ))
    .expect("parses")
}

fn probs(c: &Circuit) -> Result<Vec<f64>, String> {
    Ok(quargo::sim::Simulator::new()
        .run(c)
        .map_err(|e| e.to_string())?
        .probabilities()
        .to_vec())
}

#[test]
fn the_store_contract_holds_on_redis() {
    let server = RedisServer::start();
    let s = store(&server.url());
    assert_eq!(s.get("a").expect("get"), None);
    s.put("a", b"one").expect("put");
    assert_eq!(s.get("a").expect("get").as_deref(), Some(&b"one"[..]));
    assert!(!s.put_if_absent("a", b"two").expect("nx"));
    assert!(s.put_if_absent("b", b"two").expect("nx"));
    let ttl = Duration::from_millis(400);
    assert!(s.try_lease("a", "alice", ttl).expect("lease"));
    assert!(!s.try_lease("a", "bob", ttl).expect("lease"));
    assert!(s.try_lease("a", "alice", ttl).expect("re-entrant"));
    assert!(s.renew_lease("a", "alice", ttl).expect("renew"));
    assert!(!s.renew_lease("a", "bob", ttl).expect("renew"));
    s.release_lease("a", "bob").expect("release");
    assert!(s.lease_held("a").expect("held"));
    s.release_lease("a", "alice").expect("release");
    assert!(!s.lease_held("a").expect("held"));
    assert!(s.try_lease("a", "bob", ttl).expect("lease"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!s.lease_held("a").expect("expired"));
    s.add_counters(&[("hits", 2), ("misses", 1)])
        .expect("count");
    s.add_counters(&[("hits", 1)]).expect("count");
    let stats = s.stats("").expect("stats");
    assert_eq!((stats.entries, stats.bytes), (2, 6));
    assert_eq!(stats.counters["hits"], 3);
    s.delete("a").expect("delete");
    assert_eq!(s.get("a").expect("get"), None);
    assert_eq!(s.clear("").expect("clear"), 1);
    assert_eq!(s.stats("").expect("stats").entries, 0);
}

#[test]
fn threads_on_one_redis_compute_each_key_once() {
    let server = RedisServer::start();
    let cache = Cache::new(store(&server.url()), CacheOptions::default());
    let computed = AtomicUsize::new(0);
    let a = circuit("h q[0]; cx q[0],q[1]; t q[1]; h q[1];", 2);
    let expected = probs(&a).expect("direct");
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                let (p, _) = cache
                    .get_or_compute(&a, &ResultKind::Probabilities, || {
                        computed.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(300));
                        probs(&a)
                    })
                    .expect("result");
                assert_eq!(p, expected);
            });
        }
    });
    assert_eq!(computed.load(Ordering::SeqCst), 1);
    assert_eq!(cache.local_count(Event::Miss), 16);
    assert_eq!(cache.local_count(Event::Waited), 15);
}

#[test]
fn processes_on_one_redis_compute_each_variant_once() {
    let server = RedisServer::start();
    let url = server.url();
    let outputs = support::quargo_concurrently(
        &[
            "run",
            "examples/qaoa_ring8.qasm",
            "--max-qubits",
            "5",
            "--cache",
            &url,
        ],
        4,
    );
    let mut simulated = 0;
    for v in &outputs {
        simulated += v["report"]["circuits_simulated"].as_u64().expect("count");
        assert_eq!(v["probabilities"], outputs[0]["probabilities"]);
    }
    let stats = store(&url).stats("r/").expect("stats");
    assert!(stats.entries > 0);
    assert_eq!(simulated, stats.entries);
}

#[test]
fn a_run_survives_redis_being_killed_and_restarted() {
    let mut server = RedisServer::start();
    let cache = Cache::new(store(&server.url()), CacheOptions::default());
    let circuits: Vec<Circuit> = (0..60)
        .map(|i| {
            circuit(
                &format!(
                    "h q[0]; rz({}) q[0]; cx q[0],q[1]; h q[0];",
                    0.01 * (i + 1) as f64
                ),
                2,
            )
        })
        .collect();
    let started = Instant::now();
    let results = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            circuits
                .iter()
                .map(|c| {
                    cache
                        .get_or_compute(c, &ResultKind::Probabilities, || {
                            std::thread::sleep(Duration::from_millis(25));
                            probs(c)
                        })
                        .expect("always an answer")
                })
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(400));
        server.kill();
        std::thread::sleep(Duration::from_millis(600));
        server.spawn();
        worker.join().expect("worker")
    });
    assert!(started.elapsed() < Duration::from_secs(30));
    for (c, (p, _)) in circuits.iter().zip(&results) {
        assert_eq!(
            *p,
            probs(c).expect("direct"),
            "a wrong answer after the restart"
        );
    }
    assert!(
        cache.local_count(Event::StoreError) > 0,
        "the outage was not noticed"
    );
    // After the restart the cache works again (once the client's back-off lets it ask): results
    // are written and hit.
    let last = circuits.last().expect("circuits");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, source) = cache
            .get_or_compute(last, &ResultKind::Probabilities, || probs(last))
            .expect("last");
        if source == Source::Hit {
            break;
        }
        assert!(Instant::now() < deadline, "the cache never worked again");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_waiter_computes_when_the_lease_holder_dies() {
    let server = RedisServer::start();
    let s = store(&server.url());
    let cache = Cache::new(s.clone(), CacheOptions::default());
    let a = circuit("h q[0]; cx q[0],q[1]; rz(0.7) q[1];", 2);
    let key = cache
        .result_store_key(&a, &ResultKind::Probabilities)
        .expect("key");
    // A worker took the lease and died: nobody renews it, it lapses after 800 ms.
    assert!(s
        .try_lease(&key, "a-worker-that-died", Duration::from_millis(800))
        .expect("lease"));
    let started = Instant::now();
    let (p, source) = cache
        .get_or_compute(&a, &ResultKind::Probabilities, || probs(&a))
        .expect("computed by the waiter");
    assert_eq!(source, Source::Computed);
    assert_eq!(p, probs(&a).expect("direct"));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "it waited for the lease: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "and not much longer: {waited:?}"
    );
}

#[test]
fn a_dead_redis_is_not_asked_again_for_a_while() {
    let dead = format!("redis://127.0.0.1:{}/0", support::redis_server::free_port());
    let store = store(&dead);
    assert!(store.get("k").is_err());
    // Without the back-off each call would wait for its connection to fail (up to 500 ms here):
    // 200 calls would take many seconds. With it they fail at once, naming the back-off.
    let started = Instant::now();
    let mut backed_off = 0;
    for _ in 0..200 {
        match store.get("k") {
            Err(e) if e.to_string().contains("not asked again") => backed_off += 1,
            Err(_) => {}
            Ok(_) => panic!("a dead Redis answered"),
        }
    }
    assert!(backed_off >= 150, "only {backed_off} calls were spared");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_warm_batch_on_redis_makes_no_store_errors() {
    let server = RedisServer::start();
    let cache = Cache::new(store(&server.url()), CacheOptions::default());
    let circuits: Vec<Circuit> = (0..8)
        .map(|i| {
            circuit(
                &format!("h q[0]; rx({}) q[1]; cx q[0],q[1];", 0.1 * f64::from(i)),
                2,
            )
        })
        .collect();
    let refs: Vec<&Circuit> = circuits.iter().collect();
    for pass in ["cold", "warm"] {
        let results = cache
            .get_or_compute_many(&refs, &ResultKind::Probabilities, |i| probs(refs[i]))
            .expect("answers");
        if pass == "warm" {
            assert!(results.iter().all(|(_, s)| *s == Source::Hit));
        }
    }
    // A warm pass has no misses to lease or write: it must not send empty commands.
    assert_eq!(cache.local_count(Event::StoreError), 0);
}

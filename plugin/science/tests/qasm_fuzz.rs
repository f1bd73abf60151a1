//! Property test that throws random and mutated programs at the OpenQASM parser: it must return a
//! circuit or a positioned error, never panic or hang. Accepted circuits are simulated too (under a
//! small memory cap) to check that whatever the parser lets through, the simulator handles.
//! `make fuzz` runs it for 200,000 cases; the default run is short.

use proptest::prelude::*;
use quargo_science::qasm::{parse, ParseError};
use quargo_science::sim::Simulator;
use std::sync::atomic::{AtomicUsize, Ordering};

const VALID: &[&str] = &[
    "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[3];\ncreg c[3];\nh q[0];\ncx q[0], q[1];\nrz(pi/4) q[2];\nu3(0.1, -2e-3, .5) q[1];\nbarrier q;\nmeasure q -> c;\n",
    "OPENQASM 2.0;\ninclude \"qelib1.inc\";\ngate g(a, b) x, y { rx(a*b^2) x; cp(-a) x, y; CX y, x; U(a, b, sin(a)) y; }\nqreg q[2];\nqreg r[2];\ng(0.3, ln(2)) q[0], r[1];\ncswap q[0], r[0], r[1];\nrzz(sqrt(2)) q, r;\n",
    "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg a[4];\nh a;\nccx a[0], a[1], a[2];\n// comment\ncu3(1,2,3) a[3], a[0];\n/* block */ swap a[1], a[2];\n",
];

const TOKENS: &[&str] = &[
    "OPENQASM",
    "2.0",
    ";",
    "include",
    "\"qelib1.inc\"",
    "qreg",
    "creg",
    "q",
    "c",
    "[",
    "]",
    "3",
    "0",
    "1",
    "h",
    "cx",
    "rz",
    "u3",
    "gate",
    "g",
    "{",
    "}",
    "(",
    ")",
    ",",
    "pi",
    "+",
    "-",
    "*",
    "/",
    "^",
    "sin",
    "measure",
    "->",
    "barrier",
    "reset",
    "if",
    "==",
    "opaque",
    "1e-3",
    ".5",
    "\n",
    " ",
    "//",
    "/*",
    "*/",
    "99999999999999999999",
    "x",
    "U",
    "CX",
    "\u{e9}",
    "\0",
];

fn mutate(src: &str, edits: &[(usize, u8, u8)]) -> String {
    let mut bytes = src.as_bytes().to_vec();
    for &(at, op, byte) in edits {
        if bytes.is_empty() {
            bytes.push(byte);
            continue;
        }
        let at = at % bytes.len();
        match op % 3 {
            0 => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, byte),
            _ => bytes[at] = byte,
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `PROPTEST_CASES` from the environment (as `make fuzz` sets it), else a short default run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

static CHECKED: AtomicUsize = AtomicUsize::new(0);
static ACCEPTED: AtomicUsize = AtomicUsize::new(0);

fn check(src: &str) {
    let n = CHECKED.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_multiple_of(100_000) {
        eprintln!(
            "{n} programs checked, {} accepted",
            ACCEPTED.load(Ordering::Relaxed)
        );
    }
    match parse(src) {
        Ok(circuit) => {
            ACCEPTED.fetch_add(1, Ordering::Relaxed);
            let sim = Simulator::new().with_memory_limit(1 << 20);
            let _ = sim.run(&circuit);
        }
        Err(ParseError { line, column, .. }) => {
            assert!(line >= 1 && column >= 1, "error without a position");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..80)) {
        check(&tokens.join(" "));
    }

    #[test]
    fn mutated_programs_never_panic(
        which in 0..VALID.len(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8),
    ) {
        check(&mutate(VALID[which], &edits));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        check(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn seed_programs_are_valid() {
    for src in VALID {
        parse(src).unwrap_or_else(|e| panic!("{e}"));
    }
}

//! Helpers shared by the whole-flow tests.
#![allow(dead_code)]

pub mod redis_server;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// An HTTP client as Argo's agent behaves: statuses are answers (not errors), 30 s per call.
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into()
}

/// Argo's published schemas (the WorkflowTemplate CRD, the executor-plugin swagger), which are
/// too large to keep in the repository: `$QUARGO_ARGO_SCHEMAS`, else `../shared/schemas/argo`
/// beside the checkout. Tests that need them say so and skip when the folder is absent.
pub fn argo_schemas() -> PathBuf {
    std::env::var_os("QUARGO_ARGO_SCHEMAS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/schemas/argo"))
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `quargo ARGS` in `n` processes at once (from the repository root) and returns each
/// one's JSON output, failing on any error.
pub fn quargo_concurrently(args: &[&str], n: usize) -> Vec<Value> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_quargo"))
                .args(args)
                .current_dir(root())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("quargo starts")
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let out: Output = child.wait_with_output().expect("quargo ends");
            assert!(
                out.status.success(),
                "quargo failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).expect("stdout is JSON")
        })
        .collect()
}

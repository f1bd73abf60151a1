//! The Argo executor plugin server (axum): `POST /api/v1/template.execute` for templates whose
//! `plugin` object has the single key `quargo`, plus `GET /healthz` (liveness: the process
//! serves), `GET /readyz` (readiness: the store is open and answers) and `GET /metrics`.
//!
//! The socket is bound before anything slow; until the store is open, calls get 503 (which Argo's
//! agent retries). Auth is `Authorization: Bearer <token>` against the token file, compared in
//! constant time; anything else is 403. Templates of other plugins get `200 {}`, never 404 (a 404
//! disables the plugin for the whole workflow). Bodies over the limit get 413.

pub mod jobs;
pub mod metrics;
pub mod ops;

use crate::argo::{parse_request, Request};
use crate::cache::Cache;
use crate::sim::Simulator;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: std::net::SocketAddr,
    pub token_file: PathBuf,
    pub cache_url: String,
    pub jobs: jobs::JobOptions,
    pub batch_size: usize,
    pub max_body_bytes: usize,
    /// Simulator threads per job (0: one per core).
    pub threads: usize,
    /// Most gates one request's circuit may expand to.
    pub max_gates: usize,
    /// Largest error a cached answer may carry.
    pub cache_tolerance: f64,
    /// Seals every stored value (keyed: authenticated).
    pub sealer: crate::cache::codec::Sealer,
}

/// What the handlers need once the store is open.
#[derive(Debug)]
pub struct Ready {
    pub cache: Arc<Cache>,
    pub jobs: Arc<jobs::Jobs>,
}

#[derive(Debug)]
pub struct AppState {
    /// `Bearer <token>`, as the header must read.
    expected_auth: Vec<u8>,
    ready: OnceLock<Ready>,
    metrics: Arc<metrics::Metrics>,
}

impl AppState {
    pub fn new(token: &str) -> Arc<AppState> {
        Arc::new(AppState {
            expected_auth: format!("Bearer {}", token.trim()).into_bytes(),
            ready: OnceLock::new(),
            metrics: Arc::new(metrics::Metrics::default()),
        })
    }

    /// Opens the store and makes the job machinery; until then calls get 503.
    pub fn initialise(self: &Arc<Self>, config: &ServerConfig) -> anyhow::Result<()> {
        let options = crate::cache::CacheOptions {
            tolerance: config.cache_tolerance,
            sealer: config.sealer.clone(),
            ..Default::default()
        };
        let cache = Arc::new(Cache::open_with(&config.cache_url, options)?);
        let store = cache.store().clone();
        let sim = Simulator::new().with_threads(config.threads)?;
        let ops = Arc::new(ops::Ops::new(
            cache.clone(),
            sim,
            config.batch_size,
            config.max_gates,
        ));
        let jobs = jobs::Jobs::new(store, ops, config.jobs.clone(), self.metrics.clone());
        jobs.spawn_lease_renewal();
        let _ = self.ready.set(Ready { cache, jobs });
        Ok(())
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        bool::from(given.ct_eq(&self.expected_auth))
    }
}

/// The routes, with the body limit.
pub fn app(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/api/v1/template.execute", post(execute))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn text_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// How a call was answered: its op (`-` before one is known), the outcome metrics count it
/// under (a reply phase, or why there is no reply), and the response.
struct Answer {
    op: String,
    outcome: &'static str,
    response: Response,
}

impl Answer {
    fn new(op: &str, outcome: &'static str, response: Response) -> Answer {
        Answer {
            op: op.to_string(),
            outcome,
            response,
        }
    }
}

/// `POST /api/v1/template.execute`: every call is counted and timed once, whichever branch answers.
async fn execute(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let answer = answer(&state, &headers, &body).await;
    state
        .metrics
        .record_call(&answer.op, answer.outcome, started.elapsed().as_secs_f64());
    answer.response
}

async fn answer(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Answer {
    if !state.authorised(headers) {
        let message = "missing or wrong Authorization: Bearer token";
        return Answer::new(
            "-",
            "Forbidden",
            text_response(StatusCode::FORBIDDEN, message.into()),
        );
    }
    let call = match parse_request(body) {
        Ok(Request::NotOurs) => {
            return Answer::new("-", "NotOurs", json_response(StatusCode::OK, "{}".into()))
        }
        Ok(Request::Ours(call)) => call,
        Err(e @ crate::argo::RequestError::NotJson(_))
        | Err(e @ crate::argo::RequestError::Missing(_)) => {
            let response = text_response(StatusCode::BAD_REQUEST, format!("quargo: {e}"));
            return Answer::new("-", "BadRequest", response);
        }
        Err(e) => {
            let reply = crate::argo::Reply::failed(format!("quargo: {e}"));
            return reply_answer("-", &reply);
        }
    };
    let op = call.op().unwrap_or("-").to_string();
    let Some(ready) = state.ready.get() else {
        let message = "quargo is starting (opening its store); retry";
        let response = text_response(StatusCode::SERVICE_UNAVAILABLE, message.into());
        return Answer::new(&op, "Unavailable", response);
    };
    match ready.jobs.handle(*call).await {
        Ok(reply) => reply_answer(&op, &reply),
        Err(jobs::Unavailable(message)) => {
            tracing::warn!(%op, %message, "answering 503");
            let response = text_response(StatusCode::SERVICE_UNAVAILABLE, message);
            Answer::new(&op, "Unavailable", response)
        }
    }
}

/// A reply as Argo reads it, counted under its phase; one that cannot be written is a 500 (the
/// agent retries), never a 200 with an empty body.
fn reply_answer(op: &str, reply: &crate::argo::Reply) -> Answer {
    match serde_json::to_string(reply) {
        Ok(body) => Answer::new(
            op,
            reply.node.phase.as_str(),
            json_response(StatusCode::OK, body),
        ),
        Err(e) => Answer::new(
            op,
            "InternalError",
            text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("quargo: the reply could not be written: {e}"),
            ),
        ),
    }
}

/// Liveness: the process answers HTTP (a dead store is not a reason to restart it).
async fn healthz() -> Response {
    text_response(StatusCode::OK, "ok\n".into())
}

/// Readiness: the store is open and answers a read now.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let Some(ready) = state.ready.get() else {
        return text_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: the store is not open yet\n".into(),
        );
    };
    let store = ready.cache.store().clone();
    match tokio::task::spawn_blocking(move || store.get("readyz")).await {
        Ok(Ok(_)) => text_response(StatusCode::OK, "ready\n".into()),
        Ok(Err(e)) => text_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store is unavailable: {e}\n"),
        ),
        Err(e) => text_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("internal error: {e}\n"),
        ),
    }
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let cache = state.ready.get().map(|r| r.cache.as_ref());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(cache),
    )
        .into_response()
}

/// Binds at once, then reads the token, opens the store, and serves until SIGTERM or Ctrl-C.
pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let token = std::fs::read_to_string(&config.token_file)
        .with_context(|| format!("cannot read the token file {}", config.token_file.display()))?;
    if token.trim().is_empty() {
        anyhow::bail!("the token file {} is empty", config.token_file.display());
    }
    let state = AppState::new(&token);
    tracing::info!(listen = %config.listen, cache = %config.cache_url, "quargo plugin listening");
    let init_state = state.clone();
    let init_config = config.clone();
    let init = tokio::task::spawn_blocking(move || init_state.initialise(&init_config));
    let stopping = state.clone();
    let server = axum::serve(listener, app(state.clone(), config.max_body_bytes))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // Running jobs stop at their next check and are left for another server to take
            // over; calls in flight then answer from their records at once.
            if let Some(ready) = stopping.ready.get() {
                let jobs = ready.jobs.cancel_all_for_shutdown();
                tracing::info!(jobs, "cancelled the running jobs");
            }
        });
    let server = tokio::spawn(async move { server.await });
    init.await.context("initialisation panicked")??;
    server.await.context("the server task failed")??;
    if let Some(ready) = state.ready.get() {
        ready.jobs.wait_idle(Duration::from_secs(10)).await;
        ready.cache.flush();
    }
    tracing::info!("quargo plugin stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing the calls in flight");
}

/// Default requeue for the CLI's help text.
pub const DEFAULT_REQUEUE: Duration = Duration::from_secs(10);

//! Argo's executor-plugin wire format (Argo v3.x `executor_plugins` API, `ExecuteTemplateArgs` and
//! `ExecuteTemplateReply`; the reply schema is `tests/contracts/executor-plugin-reply.schema.json`): the request the
//! agent sends to `POST /api/v1/template.execute`, the reply it expects, and Go duration strings.
//!
//! Requests are read leniently (every Argo field may be absent; unknown fields are ignored), as the
//! agent's Go encoder and template substitution decide what appears. Replies are built exactly:
//! `phase` is one of Argo's names, `requeue` a Go duration string and only on non-terminal
//! replies, structured outputs are JSON strings.

use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use thiserror::Error;

/// The key our templates use under `plugin`.
pub const PLUGIN_KEY: &str = "quargo";
/// Longest template deadline honoured (a year); longer ones are clamped, so deadlines never
/// overflow a clock.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(366 * 24 * 3600);

#[derive(Debug, Error, PartialEq)]
pub enum RequestError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body has no {0}")]
    Missing(&'static str),
    #[error("plugin.quargo must be an object")]
    BodyShape,
    #[error(
        "the template's timeout '{0}' is not a duration (use Go syntax such as 30s, 5m, 1h30m)"
    )]
    BadTimeout(String),
}

/// One `template.execute` call addressed to us.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginCall {
    pub workflow_name: String,
    pub namespace: String,
    pub workflow_uid: String,
    pub template_name: String,
    /// The object under `plugin.quargo`: `op` and its inputs.
    pub body: serde_json::Map<String, Value>,
    /// The template's own deadline (`timeout`, else `activeDeadlineSeconds`).
    pub timeout: Option<Duration>,
}

impl PluginCall {
    pub fn op(&self) -> Option<&str> {
        self.body.get("op").and_then(Value::as_str)
    }

    /// `nodeName` and `attempt` as the templates pass them (`{{node.name}}`, `{{retries}}`).
    /// An unsubstituted `{{retries}}` (a template without retryStrategy) counts as attempt 0.
    pub fn node_and_attempt(&self) -> (String, String) {
        let node = text_field(&self.body, "nodeName").unwrap_or_default();
        let attempt = text_field(&self.body, "attempt")
            .filter(|a| !a.contains("{{"))
            .unwrap_or_else(|| "0".into());
        (node, attempt)
    }

    /// The idempotency key: workflow uid, node name and attempt.
    pub fn idempotency_key(&self) -> String {
        let (node, attempt) = self.node_and_attempt();
        let mut h = blake3::Hasher::new();
        for part in [&self.workflow_uid, &node, &attempt, &self.template_name] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().to_hex().to_string()
    }
}

/// A field as text, whether Argo substituted it as a JSON string or a number.
pub fn text_field(body: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    match body.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What a request turned out to be.
#[derive(Debug, PartialEq)]
pub enum Request {
    /// A template for another plugin (or not a plugin template): answer `{}`.
    NotOurs,
    Ours(Box<PluginCall>),
}

/// Reads an `ExecuteTemplateArgs` body.
pub fn parse_request(bytes: &[u8]) -> Result<Request, RequestError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| RequestError::NotJson(e.to_string()))?;
    let template = value
        .get("template")
        .and_then(Value::as_object)
        .ok_or(RequestError::Missing("template"))?;
    let Some(plugin) = template.get("plugin") else {
        return Ok(Request::NotOurs);
    };
    let Some(plugin) = plugin.as_object() else {
        return Ok(Request::NotOurs);
    };
    // Only a plugin object whose single key is ours is addressed to us; anything else belongs to
    // another plugin (or to none) and gets `{}`, as Argo's agent expects.
    let (Some(body), 1) = (plugin.get(PLUGIN_KEY), plugin.len()) else {
        return Ok(Request::NotOurs);
    };
    let body = body.as_object().ok_or(RequestError::BodyShape)?.clone();
    let metadata = value
        .get("workflow")
        .and_then(|w| w.get("metadata"))
        .ok_or(RequestError::Missing("workflow.metadata"))?;
    let meta = |name: &str| {
        metadata
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let timeout = match template.get("timeout").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => {
            Some(parse_go_duration(t).ok_or_else(|| RequestError::BadTimeout(t.into()))?)
        }
        _ => match template.get("activeDeadlineSeconds") {
            Some(Value::Number(n)) => n.as_u64().map(Duration::from_secs),
            Some(Value::String(s)) => s.trim().parse().ok().map(Duration::from_secs),
            _ => None,
        },
    }
    .map(|t| t.min(MAX_TIMEOUT));
    Ok(Request::Ours(Box::new(PluginCall {
        workflow_name: meta("name"),
        namespace: meta("namespace"),
        workflow_uid: meta("uid"),
        template_name: template
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .into(),
        body,
        timeout,
    })))
}

/// Argo's node phases that a plugin reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Error,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::Error)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Error => "Error",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Parameter {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Outputs {
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub parameters: Vec<Parameter>,
    /// A JSON string (never an object: Argo turns objects into "").
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct NodeResult {
    pub phase: Phase,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outputs: Option<Outputs>,
}

/// An `ExecuteTemplateReply`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reply {
    pub node: NodeResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requeue: Option<String>,
}

impl Reply {
    pub fn terminal(node: NodeResult) -> Reply {
        Reply {
            node,
            requeue: None,
        }
    }

    /// A non-terminal reply; the agent calls again after `after`.
    pub fn waiting(phase: Phase, message: String, after: Duration) -> Reply {
        Reply {
            node: NodeResult {
                phase,
                message,
                outputs: None,
            },
            requeue: Some(go_duration(after)),
        }
    }

    pub fn failed(message: impl Into<String>) -> Reply {
        Reply::terminal(NodeResult {
            phase: Phase::Failed,
            message: message.into(),
            outputs: None,
        })
    }
}

/// A Go `time.ParseDuration` string: whole seconds as `"30s"`, else milliseconds (`"1500ms"`).
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis().max(1);
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Parses Go duration syntax: a sequence of `<number><unit>` with units ns us µs ms s m h, e.g.
/// `1h30m`, `2.5s`, `500ms`. Negative or unitless durations (other than `0`) are refused.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    (total.is_finite() && total < 1e12).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request of the contract doc (section 1.4), as the agent serialises it, with our key.
    const AGENT_REQUEST: &str = r#"{"workflow":{"metadata":{"name":"qcut-pipeline-x7k2p","namespace":"quantum","uid":"5f0c9a4e-1b2c-4d3e-9f8a-0123456789ab"}},"template":{"name":"cut","inputs":{"parameters":[{"name":"circuit-uri","value":"c/abc"}]},"outputs":{},"metadata":{},"plugin":{"quargo":{"circuit":"c/abc","nodeName":"qcut-pipeline-x7k2p.cut","op":"cut","attempt":"{{retries}}"}},"timeout":"1h30m"}}"#;

    #[test]
    fn the_agents_request_is_read() {
        let Request::Ours(call) = parse_request(AGENT_REQUEST.as_bytes()).expect("parses") else {
            panic!("ours");
        };
        assert_eq!(call.workflow_uid, "5f0c9a4e-1b2c-4d3e-9f8a-0123456789ab");
        assert_eq!(call.namespace, "quantum");
        assert_eq!(call.op(), Some("cut"));
        assert_eq!(call.timeout, Some(Duration::from_secs(5400)));
        assert_eq!(
            call.node_and_attempt(),
            ("qcut-pipeline-x7k2p.cut".into(), "0".into())
        );
    }

    #[test]
    fn other_plugins_and_plain_templates_are_not_ours() {
        let doc_example = r#"{"workflow":{"metadata":{"name":"my-wf"}},"template":{"name":"my-tmpl","inputs":{},"outputs":{},"plugin":{"hello":{}}}}"#;
        assert_eq!(parse_request(doc_example.as_bytes()), Ok(Request::NotOurs));
        let container = r#"{"workflow":{"metadata":{"name":"w"}},"template":{"name":"t","container":{"image":"x"}}}"#;
        assert_eq!(parse_request(container.as_bytes()), Ok(Request::NotOurs));
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        assert!(matches!(
            parse_request(b"{\"workflow\":"),
            Err(RequestError::NotJson(_))
        ));
        assert_eq!(parse_request(b"{}"), Err(RequestError::Missing("template")));
        // A plugin object with no key, or with ours beside another, is not addressed to us.
        for plugin in [r#"{}"#, r#"{"a":{},"quargo":{}}"#] {
            let body =
                format!(r#"{{"workflow":{{"metadata":{{}}}},"template":{{"plugin":{plugin}}}}}"#);
            assert_eq!(
                parse_request(body.as_bytes()),
                Ok(Request::NotOurs),
                "{plugin}"
            );
        }
        let bad_timeout =
            r#"{"workflow":{"metadata":{}},"template":{"plugin":{"quargo":{}},"timeout":"1d"}}"#;
        assert!(matches!(
            parse_request(bad_timeout.as_bytes()),
            Err(RequestError::BadTimeout(_))
        ));
    }

    #[test]
    fn huge_deadlines_are_clamped_not_overflowed() {
        for deadline in [
            r#""activeDeadlineSeconds":18446744073709551615"#,
            r#""activeDeadlineSeconds":"18446744073709551615""#,
            r#""timeout":"2562047h47m16s""#,
        ] {
            let body = format!(
                r#"{{"workflow":{{"metadata":{{}}}},"template":{{"plugin":{{"quargo":{{}}}},{deadline}}}}}"#
            );
            match parse_request(body.as_bytes()) {
                Ok(Request::Ours(call)) => {
                    assert_eq!(call.timeout, Some(MAX_TIMEOUT), "{deadline}")
                }
                other => panic!("{deadline}: {other:?}"),
            }
        }
    }

    #[test]
    fn retries_make_distinct_keys() {
        let call = |attempt: &str| {
            let body = AGENT_REQUEST.replace("{{retries}}", attempt);
            match parse_request(body.as_bytes()) {
                Ok(Request::Ours(c)) => c.idempotency_key(),
                other => panic!("{other:?}"),
            }
        };
        assert_ne!(call("0"), call("1"));
        assert_eq!(call("0"), call("{{retries}}"));
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("2.5s"), Some(Duration::from_millis(2500)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "1d", "10", "-1s", "s", "1.2.3s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn terminal_replies_never_requeue() {
        let reply = serde_json::to_value(Reply::failed("bad QASM")).expect("json");
        assert_eq!(
            reply,
            serde_json::json!({"node":{"phase":"Failed","message":"bad QASM"}})
        );
        let waiting = serde_json::to_value(Reply::waiting(
            Phase::Running,
            "started".into(),
            Duration::from_secs(5),
        ))
        .expect("json");
        assert_eq!(waiting["requeue"], "5s");
    }
}

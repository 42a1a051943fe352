//! A scripted API server for tests, on kube-rs's documented `tower-test` mock-service pattern.

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

/// One request as the mock server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Seen {
    pub fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
    pub fn is_watch(&self) -> bool {
        self.query.split('&').any(|kv| kv == "watch=true")
    }
    /// One line per request, for assertions that read like an API trace.
    pub fn line(&self) -> String {
        let watch = if self.is_watch() { " (watch)" } else { "" };
        format!("{} {}{watch}", self.method, self.path)
    }
}

/// What the scripted server answers.
pub enum Reply {
    /// A JSON body with an HTTP status.
    Json(u16, Value),
    /// A watch stream: these events, then the stream ends.
    Watch(Vec<(&'static str, Value)>),
    Text(String),
    /// Never answers, like a watch with nothing to report.
    Hang,
}

pub type Trace = Arc<Mutex<Vec<Seen>>>;

/// A client whose every request `handler` answers; the trace records them in order.
pub fn serve(mut handler: impl FnMut(&Seen) -> Reply + Send + 'static) -> (Client, Trace) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let trace: Trace = Arc::default();
    let log = trace.clone();
    tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        let mut pending = vec![];
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let seen = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            log.lock().unwrap().push(seen.clone());
            let response = |status: u16, body: Vec<u8>| {
                Response::builder().status(status).body(Body::from(body)).expect("valid response")
            };
            match handler(&seen) {
                Reply::Json(status, value) => send.send_response(response(status, value.to_string().into_bytes())),
                Reply::Watch(events) => {
                    let lines: String =
                        events.into_iter().map(|(kind, object)| format!("{}\n", json!({"type": kind, "object": object}))).collect();
                    send.send_response(response(200, lines.into_bytes()))
                }
                Reply::Text(text) => send.send_response(response(200, text.into_bytes())),
                Reply::Hang => pending.push(send),
            }
        }
    });
    (Client::new(service, "default"), trace)
}

pub fn lines(trace: &Trace) -> Vec<String> {
    trace.lock().unwrap().iter().map(Seen::line).collect()
}

/// The Status body the API server sends with an error code.
pub fn status(code: u16, reason: &str, message: &str) -> Reply {
    Reply::Json(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

/// A list answer, as the watcher's initial list needs it (with a resourceVersion).
pub fn list(kind: &str, items: Vec<Value>) -> Reply {
    Reply::Json(200, json!({"kind": format!("{kind}List"), "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}))
}

pub fn ok(value: Value) -> Reply {
    Reply::Json(200, value)
}

/// The body that the echo of a POST would be: what was sent, plus a uid.
pub fn created(seen: &Seen) -> Reply {
    let mut object = seen.body.clone();
    object["metadata"]["uid"] = json!("uid-1");
    object["metadata"]["resourceVersion"] = json!("1");
    Reply::Json(201, object)
}

/// A pod in `namespace` with the given status.
pub fn pod(namespace: &str, name: &str, status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"), "resourceVersion": "2"},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
        "status": status,
    })
}

/// Pod status: scheduled and every listed container running; `ready` sets the Ready condition.
pub fn running(containers: &[&str], ready: bool) -> Value {
    json!({
        "phase": "Running",
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": if ready { "True" } else { "False" }},
        ],
        "containerStatuses": containers.iter().map(|c| json!({
            "name": c, "image": "i", "imageID": "", "ready": ready, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-11-27T18:00:00Z"}},
        })).collect::<Vec<_>>(),
    })
}

/// Pod status: scheduled, `container` waiting with `reason` and `message`.
pub fn waiting(container: &str, image: &str, reason: &str, message: &str) -> Value {
    json!({
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{
            "name": container, "image": image, "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": reason, "message": message}},
        }],
    })
}

/// Pod status: `container` exited with `code`.
pub fn exited(container: &str, code: i32) -> Value {
    json!({
        "phase": if code == 0 { "Succeeded" } else { "Failed" },
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{
            "name": container, "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}},
        }],
    })
}

//! A scripted API server for tests, on kube-rs's documented `tower-test` mock-service pattern.
//!
//! Exec and port-forward are WebSocket upgrades, which a mock service cannot complete: an
//! [`Reply::Upgrade`] is forwarded to a local WebSocket server that sends the scripted frames in
//! the kubelet's channel protocol (`v4.channel.k8s.io`), so kube-rs's own exec and port-forward
//! code runs against it. Tests that use it run on real time: paused time would advance past
//! every timer while the real socket is read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;
use kube::{Client, Config};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    /// Accepts a WebSocket upgrade (exec, port-forward) and sends these frames, then closes.
    Upgrade(Vec<Frame>),
}

/// One WebSocket message of the kubelet's channel protocol: a channel number and its bytes.
pub type Frame = (u8, Vec<u8>);

pub type Trace = Arc<Mutex<Vec<Seen>>>;

/// A client whose every request `handler` answers; the trace records them in order.
pub fn serve(mut handler: impl FnMut(&Seen) -> Reply + Send + 'static) -> (Client, Trace) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let trace: Trace = Arc::default();
    let log = trace.clone();
    tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        let mut pending = vec![];
        let mut upgrades: Option<Upgrades> = None;
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
                Reply::Upgrade(frames) => {
                    if upgrades.is_none() {
                        upgrades = Some(Upgrades::start().await);
                    }
                    let upgrades = upgrades.as_ref().expect("started above");
                    upgrades.frames.lock().unwrap().push_back(frames);
                    let client = upgrades.client.clone();
                    let request = Request::from_parts(parts, Body::from(bytes.to_vec()));
                    tokio::spawn(async move {
                        match client.send(request).await {
                            Ok(answer) => send.send_response(answer),
                            Err(e) => send.send_error(e),
                        }
                    });
                }
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

/// The exec of a command that printed `stdout` and `stderr` and exited with `code`, with the
/// Status the kubelet sends on its error channel.
pub fn exec(stdout: &str, stderr: &str, code: i32) -> Reply {
    let status = if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure",
               "message": format!("command terminated with non-zero exit code: error executing command [sh -c ...]: exit status {code}"),
               "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
    };
    let mut frames = vec![];
    for (channel, text) in [(1, stdout), (2, stderr)] {
        if !text.is_empty() {
            frames.push((channel, text.as_bytes().to_vec()));
        }
    }
    frames.push((3, status.to_string().into_bytes()));
    Reply::Upgrade(frames)
}

/// A port-forward to `port` that the kubelet gives up on at once with `message`, as when nothing
/// listens on the port inside the pod.
pub fn port_forward_refused(port: u16, message: &str) -> Reply {
    let port = port.to_le_bytes().to_vec();
    Reply::Upgrade(vec![(0, port.clone()), (1, port), (1, message.as_bytes().to_vec())])
}

/// A local WebSocket server that answers each connection with the next scripted frames, and a
/// client that reaches it, so upgrades are real HTTP/1.1 ones.
struct Upgrades {
    client: Client,
    frames: Arc<Mutex<VecDeque<Vec<Frame>>>>,
}

impl Upgrades {
    async fn start() -> Upgrades {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let frames: Arc<Mutex<VecDeque<Vec<Frame>>>> = Arc::default();
        let queue = frames.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let script = queue.lock().unwrap().pop_front().unwrap_or_default();
                tokio::spawn(serve_websocket(socket, script));
            }
        });
        let client = Client::try_from(Config::new(url.parse().expect("a URL"))).expect("a client");
        Upgrades { client, frames }
    }
}

/// One WebSocket connection: the handshake, the frames (binary, unmasked, as a server sends them),
/// a close frame, then whatever the client still sends is read and dropped.
async fn serve_websocket(mut socket: tokio::net::TcpStream, frames: Vec<Frame>) {
    let mut head = vec![];
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if socket.read_exact(&mut byte).await.is_err() {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let key = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-key")).map(|(_, v)| v.trim()))
        .unwrap_or_default();
    let accept = base64(&sha1(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes()));
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
    );
    let mut out = answer.into_bytes();
    for (channel, bytes) in frames {
        let payload: Vec<u8> = std::iter::once(channel).chain(bytes).collect();
        out.push(0x82);
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n <= usize::from(u16::MAX) => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend(payload);
    }
    out.extend_from_slice(&[0x88, 0x02, 0x03, 0xe8]);
    if socket.write_all(&out).await.is_err() {
        return;
    }
    let mut sink = [0u8; 1024];
    let drain = async { while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
}

/// SHA-1, for the WebSocket handshake's accept key only.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w: Vec<u32> = block.chunks(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])).collect();
        for i in 16..80 {
            let next = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
            w.push(next);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*word);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, word) in out.chunks_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn the_handshake_key_is_rfc_6455s() {
    // The example of RFC 6455, section 1.3.
    let accept = base64(&sha1(b"dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11"));
    assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

//! A pod's port as a local TCP listener, so clients that dial addresses (bollard) can reach it.
//!
//! A client only sees a forwarded connection close; why it closed (the pod is gone, nothing
//! listens on the port inside the pod, the permission is missing) is the API server's or the
//! kubelet's to say. The listener keeps the last such reason for whoever reports the client's error.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::orchestrate::api_error;

/// Resolves with the far end's reason when it gives up on a stream (the kubelet's error channel
/// of a port-forward), or with `None` when the stream ends without one.
pub type FailureSignal = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

/// One upstream connection: its byte stream, and how to hear why it failed.
pub struct Upstream<S> {
    pub stream: S,
    pub failure: FailureSignal,
}

impl<S> Upstream<S> {
    /// A stream whose far end never says why it ends.
    pub fn plain(stream: S) -> Self {
        Upstream { stream, failure: Box::pin(std::future::ready(None)) }
    }
}

/// How long a closed connection's far end may take to say why it closed.
const REASON_GRACE: Duration = Duration::from_secs(2);

/// Forwards every connection to `127.0.0.1:<addr().port()>` to a port of a pod.
/// Dropping it stops accepting; connections in flight end with their peers.
pub struct LocalForward {
    addr: SocketAddr,
    task: JoinHandle<()>,
    /// The last reason an upstream connection failed, in the API server's or kubelet's words.
    failure: watch::Receiver<Option<String>>,
}

impl LocalForward {
    /// Listens on an ephemeral loopback port; each accepted connection opens its own
    /// port-forward stream, because bollard keeps several connections at once.
    pub async fn to_pod(pods: Api<Pod>, pod: String, port: u16) -> io::Result<LocalForward> {
        Self::start(move || {
            let (pods, pod) = (pods.clone(), pod.clone());
            async move {
                let action = format!("port-forward to pod {pod} port {port}");
                let mut forwarder = pods.portforward(&pod, &[port]).await.map_err(|e| io::Error::other(api_error(&action, e).to_string()))?;
                let stream = forwarder
                    .take_stream(port)
                    .ok_or_else(|| io::Error::other(format!("{action}: the forwarder gave no stream")))?;
                let kubelet = forwarder.take_error(port);
                let failure: FailureSignal = Box::pin(async move {
                    // The kubelet's own words when it gives up on the port, else the forwarder's failure.
                    if let Some(reason) = match kubelet {
                        Some(said) => said.await,
                        None => None,
                    } {
                        return Some(format!("{action}: {reason}"));
                    }
                    forwarder.join().await.err().map(|e| format!("{action}: {e}"))
                });
                Ok(Upstream { stream, failure })
            }
        })
        .await
    }

    /// Serves the listener with upstream connections made by `connect`.
    pub async fn start<F, Fut, S>(connect: F) -> io::Result<LocalForward>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<Upstream<S>>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (report, failure) = watch::channel(None);
        let report = Arc::new(report);
        let task = tokio::spawn(async move {
            loop {
                let Ok((local, _)) = listener.accept().await else { break };
                tokio::spawn(serve(local, connect(), report.clone()));
            }
        });
        Ok(LocalForward { addr, task, failure })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `tcp://127.0.0.1:PORT`, what `bollard::Docker::connect_with_http` takes.
    pub fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// Why an upstream connection failed last, if one did: waits up to `within` for a reason still
    /// on its way (a client may see its connection close a moment before the reason arrives).
    pub async fn failure(&self, within: Duration) -> Option<String> {
        let mut failure = self.failure.clone();
        let _ = tokio::time::timeout(within, failure.wait_for(Option::is_some)).await;
        let reason = failure.borrow().clone();
        reason
    }
}

/// One local connection: its upstream, then bytes both ways until either side ends. A failed
/// upstream closes the local connection after its reason is recorded, so a client that reports
/// the closed connection finds the reason there.
async fn serve<S>(
    mut local: tokio::net::TcpStream,
    upstream: impl Future<Output = io::Result<Upstream<S>>>,
    report: Arc<watch::Sender<Option<String>>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Upstream { mut stream, mut failure } = match upstream.await {
        Ok(upstream) => upstream,
        Err(e) => {
            report.send_replace(Some(e.to_string()));
            return;
        }
    };
    let copied = {
        let copy = tokio::io::copy_bidirectional(&mut local, &mut stream);
        tokio::pin!(copy);
        tokio::select! {
            biased;
            reason = &mut failure => match reason {
                Some(reason) => {
                    report.send_replace(Some(reason));
                    return;
                }
                // Ended without a word: the bytes still in flight go on.
                None => copy.await,
            },
            copied = &mut copy => copied,
        }
    };
    if let Err(e) = copied {
        report.send_replace(Some(format!("the forwarded connection failed: {e}")));
    }
    // The far end may say why it closed just after closing.
    if let Ok(Some(reason)) = tokio::time::timeout(REASON_GRACE, failure).await {
        report.send_replace(Some(reason));
    }
}

impl Drop for LocalForward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// An upstream that answers each connection with its number, then echoes.
    async fn echo_forward(opened: Arc<AtomicUsize>) -> LocalForward {
        LocalForward::start(move || {
            let n = opened.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let (near, mut far) = tokio::io::duplex(1024);
                tokio::spawn(async move {
                    far.write_all(format!("conn{n}:").as_bytes()).await.unwrap();
                    let mut buf = [0u8; 64];
                    while let Ok(read) = far.read(&mut buf).await {
                        if read == 0 || far.write_all(&buf[..read]).await.is_err() {
                            break;
                        }
                    }
                });
                Ok(Upstream::plain(near))
            }
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn each_local_connection_gets_its_own_upstream_and_bytes_flow_both_ways() {
        let opened = Arc::new(AtomicUsize::new(0));
        let forward = echo_forward(opened.clone()).await;
        assert!(forward.url().starts_with("tcp://127.0.0.1:"));
        let mut a = TcpStream::connect(forward.addr()).await.unwrap();
        let mut b = TcpStream::connect(forward.addr()).await.unwrap();
        for (conn, word) in [(&mut a, "ping"), (&mut b, "pong")] {
            conn.write_all(word.as_bytes()).await.unwrap();
        }
        let mut got_a = vec![0u8; "connN:ping".len()];
        let mut got_b = vec![0u8; "connN:pong".len()];
        a.read_exact(&mut got_a).await.unwrap();
        b.read_exact(&mut got_b).await.unwrap();
        let (got_a, got_b) = (String::from_utf8(got_a).unwrap(), String::from_utf8(got_b).unwrap());
        assert!(got_a.ends_with(":ping") && got_b.ends_with(":pong"), "{got_a} {got_b}");
        assert_ne!(got_a[..5], got_b[..5], "connections shared an upstream");
        assert_eq!(opened.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_upstream_closes_only_that_connection_and_its_reason_is_kept() {
        let forward = LocalForward::start(|| async {
            Err::<Upstream<tokio::io::DuplexStream>, _>(io::Error::other("pods \"job\" not found (NotFound, HTTP 404)"))
        })
        .await
        .unwrap();
        assert_eq!(forward.failure(Duration::ZERO).await, None);
        let mut conn = TcpStream::connect(forward.addr()).await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(conn.read(&mut buf).await.unwrap(), 0, "expected EOF");
        assert_eq!(forward.failure(Duration::ZERO).await.as_deref(), Some("pods \"job\" not found (NotFound, HTTP 404)"));
        // The listener keeps serving.
        assert!(TcpStream::connect(forward.addr()).await.is_ok());
    }

    /// The kubelet says why it gives up on a port on the port's error channel, then closes: the
    /// reason is kept before the client sees its connection close.
    #[tokio::test]
    async fn the_far_ends_reason_is_kept_before_the_connection_closes() {
        let forward = LocalForward::start(|| async {
            let (near, far) = tokio::io::duplex(64);
            let failure: FailureSignal = Box::pin(async move {
                drop(far);
                Some("failed to connect to localhost:2375 inside namespace: connection refused".to_string())
            });
            Ok(Upstream { stream: near, failure })
        })
        .await
        .unwrap();
        let mut conn = TcpStream::connect(forward.addr()).await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(conn.read(&mut buf).await.unwrap(), 0, "expected EOF");
        let reason = forward.failure(Duration::ZERO).await.unwrap();
        assert!(reason.contains("connection refused"), "{reason}");
    }

    #[tokio::test]
    async fn dropping_the_forward_stops_listening() {
        let forward = echo_forward(Arc::default()).await;
        let addr = forward.addr();
        drop(forward);
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(TcpStream::connect(addr).await.is_err());
    }
}

//! A pod's port as a local TCP listener, so clients that dial addresses (bollard) can reach it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Forwards every connection to `127.0.0.1:<addr().port()>` to a port of a pod.
/// Dropping it stops accepting; connections in flight end with their peers.
pub struct LocalForward {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl LocalForward {
    /// Listens on an ephemeral loopback port; each accepted connection opens its own
    /// port-forward stream, because bollard keeps several connections at once.
    pub async fn to_pod(pods: Api<Pod>, pod: String, port: u16) -> io::Result<LocalForward> {
        Self::start(move || {
            let (pods, pod) = (pods.clone(), pod.clone());
            async move {
                let mut forwarder = pods
                    .portforward(&pod, &[port])
                    .await
                    .map_err(|e| io::Error::other(format!("port-forward to pod {pod} port {port}: {e}")))?;
                let stream = forwarder
                    .take_stream(port)
                    .ok_or_else(|| io::Error::other(format!("port-forward to pod {pod} gave no stream for {port}")))?;
                // The forwarder's task keeps running while the stream is open; nothing to join.
                Ok(stream)
            }
        })
        .await
    }

    /// Serves the listener with upstream connections made by `connect`.
    pub async fn start<F, Fut, S>(connect: F) -> io::Result<LocalForward>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<S>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut local, _)) = listener.accept().await else { break };
                let upstream = connect();
                tokio::spawn(async move {
                    // A failed upstream closes the local connection: the client sees the error
                    // as a dropped connection and reports it against the operation it ran.
                    if let Ok(mut upstream) = upstream.await {
                        let _ = tokio::io::copy_bidirectional(&mut local, &mut upstream).await;
                    }
                });
            }
        });
        Ok(LocalForward { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `tcp://127.0.0.1:PORT`, what `bollard::Docker::connect_with_http` takes.
    pub fn url(&self) -> String {
        format!("tcp://{}", self.addr)
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
                Ok(near)
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
    async fn a_failed_upstream_closes_only_that_connection() {
        let forward = LocalForward::start(|| async { Err::<tokio::io::DuplexStream, _>(io::Error::other("no pod")) })
            .await
            .unwrap();
        let mut conn = TcpStream::connect(forward.addr()).await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(conn.read(&mut buf).await.unwrap(), 0, "expected EOF");
        // The listener keeps serving.
        assert!(TcpStream::connect(forward.addr()).await.is_ok());
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

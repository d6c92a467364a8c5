//! The daemon's HTTP side: `/healthz` (the process is alive), `/readyz` (the most recent
//! reconcile succeeded) and `/metrics`. Like the emulator, it serves a listener the caller bound
//! and stops when the shutdown future completes, so tests bind port 0.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use super::metrics::{self, Metrics};

/// Whether the daemon is ready, as `/readyz` reports it.
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

// 0 (the default): no reconcile has succeeded yet.
const READY: u8 = 1;
const FAILING: u8 = 2;

impl Readiness {
    /// The most recent reconcile succeeded.
    pub fn succeeded(&self) {
        self.0.store(READY, Ordering::Relaxed);
    }

    /// The most recent reconcile failed or was skipped. Before the first success the state
    /// stays "not yet", which reads better in a probe's message.
    pub fn failed(&self) {
        let _ = self
            .0
            .compare_exchange(READY, FAILING, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed) == READY
    }

    fn message(&self) -> (StatusCode, &'static str) {
        match self.0.load(Ordering::Relaxed) {
            READY => (StatusCode::OK, "ready: the latest reconcile succeeded\n"),
            FAILING => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the latest reconcile failed (see the log)\n",
            ),
            _ => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: no reconcile has succeeded yet\n",
            ),
        }
    }
}

/// What the endpoints read.
#[derive(Debug, Default)]
pub struct Status {
    pub readiness: Readiness,
    /// Shared with the API client, which reports every response to it.
    pub metrics: Arc<Metrics>,
}

pub fn router(status: Arc<Status>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(status)
}

async fn readyz(State(status): State<Arc<Status>>) -> impl IntoResponse {
    status.readiness.message()
}

async fn metrics_text(State(status): State<Arc<Status>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        status.metrics.encode(),
    )
}

/// Serves the endpoints on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    status: Arc<Status>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(status))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    #[tokio::test]
    async fn readiness_follows_the_latest_reconcile() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(Status::default());
        let stop = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            status.clone(),
            stop.clone().cancelled_owned(),
        ));

        assert_eq!(get(addr, "/healthz").await.0, 200);
        let (code, body) = get(addr, "/readyz").await;
        assert_eq!(
            (code, body.as_str()),
            (503, "not ready: no reconcile has succeeded yet\n")
        );
        status.readiness.failed();
        assert_eq!(get(addr, "/readyz").await.0, 503);
        status.readiness.succeeded();
        assert_eq!(get(addr, "/readyz").await.0, 200);
        status.readiness.failed();
        let (code, body) = get(addr, "/readyz").await;
        assert_eq!(code, 503);
        assert!(body.contains("latest reconcile failed"), "{body}");

        let (code, body) = get(addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(body.contains("tfe_policy_sync_build_info"), "{body}");

        stop.cancel();
        server.await.unwrap().unwrap();
    }
}

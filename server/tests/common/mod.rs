//! A live API server on port 0 (optionally with in-process workers) and a
//! small blocking HTTP client for the tests.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use server::api::{router, AppState, Auth};
use store::{QueueConfig, Store};
use tokio::sync::watch;
use worker::pool::AgentPool;

/// The shared test datasets.
pub fn datasets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets")
}

/// A running server: its base URL (`.../api/v1`), its store, and the switch
/// that stops its workers.
pub struct Live {
    /// `http://127.0.0.1:PORT/api/v1`.
    pub base: String,
    /// The server's store (same process: its events reach the server).
    pub store: Store,
    stop: watch::Sender<bool>,
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Serves the API on a free port with `auth` and `workers` in-process agents.
pub async fn serve(url: &str, auth: Auth, workers: usize) -> Live {
    serve_with(url, auth, workers, |state| state).await
}

/// [`serve`], with the state as `configure` makes it (limits and the like).
pub async fn serve_with(
    url: &str,
    auth: Auth,
    workers: usize,
    configure: impl FnOnce(AppState) -> AppState,
) -> Live {
    let store = Store::connect(url, QueueConfig::default())
        .await
        .expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = router(configure(AppState::new(store.clone(), auth)));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (stop, stop_rx) = watch::channel(false);
    if workers > 0 {
        let mut pool =
            AgentPool::new(workers, Some(1), &["cpu".to_owned()], datasets()).expect("pool");
        pool.heartbeat = Duration::from_millis(200);
        pool.poll = Duration::from_millis(200);
        pool.spawn(&store, &stop_rx);
    }
    Live {
        base: format!("http://{addr}/api/v1"),
        store,
        stop,
    }
}

/// One answer: status, headers of interest, body text.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub header: Option<String>,
    pub text: String,
}

impl Answer {
    /// The body as JSON (a string value when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::String(self.text.clone()))
    }

    /// `error.code` of an error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("<no error.code>")
            .to_owned()
    }
}

/// A request with an optional JSON body and bearer token; `header` names a
/// response header to return.
pub async fn request(
    method: &'static str,
    url: String,
    body: Option<String>,
    token: Option<&'static str>,
    header: Option<&'static str>,
) -> Answer {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let auth = token.map(|t| format!("Bearer {t}"));
        let response = if method == "GET" {
            let mut r = agent.get(&url);
            if let Some(a) = &auth {
                r = r.header("authorization", a);
            }
            r.call()
        } else {
            let mut r = agent.post(&url);
            if let Some(a) = &auth {
                r = r.header("authorization", a);
            }
            match body {
                Some(body) => r
                    .header("content-type", "application/json")
                    .send(body.as_bytes()),
                None => r.header("content-type", "application/json").send_empty(),
            }
        }
        .expect("HTTP round trip");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let header = header.and_then(|h| {
            response
                .headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
        let text = response.into_body().read_to_string().unwrap_or_default();
        Answer {
            status,
            content_type,
            header,
            text,
        }
    })
    .await
    .expect("request task")
}

/// `GET url` → (status, JSON).
pub async fn get(url: String) -> (u16, Value) {
    let a = request("GET", url, None, None, None).await;
    (a.status, a.json())
}

/// `POST url` with an optional JSON body → (status, JSON).
pub async fn post(url: String, body: Option<String>) -> (u16, Value) {
    let a = request("POST", url, body, None, None).await;
    (a.status, a.json())
}

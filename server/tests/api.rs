//! The HTTP API over real HTTP on port 0, on SQLite and on PostgreSQL:
//! create, read, cancel, and every error with its status and JSON body.

use serde_json::{json, Value};
use server::api::{router, AppState};
use store::{testing, QueueConfig, Store};

/// Serves the API on a free port; returns its base URL.
async fn serve(url: String) -> String {
    let store = Store::connect(&url, QueueConfig::default())
        .await
        .expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router(AppState { store })).await });
    format!("http://{addr}/api/v1")
}

/// One request: `(status, JSON body)`.
async fn call(method: &'static str, url: String, body: Option<String>) -> (u16, Value) {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let response = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            (_, Some(body)) => agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.as_bytes()),
            (_, None) => agent.post(&url).send_empty(),
        }
        .expect("HTTP round trip");
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    })
    .await
    .expect("request task")
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error.code>")
}

async fn api_contract(url: String) {
    let base = serve(url).await;
    assert_eq!(
        call("GET", format!("{base}/healthz"), None).await,
        (200, json!({"status": "ok"}))
    );
    assert_eq!(call("GET", format!("{base}/readyz"), None).await.0, 200);

    let spec =
        json!({"name": "api", "dataset": "mnist", "budget": {"max_trials": 4, "parallelism": 2}});
    let (status, created) = call("POST", format!("{base}/searches"), Some(spec.to_string())).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().expect("id");
    assert_eq!(
        (
            created["status"].as_str(),
            created["trials_proposed"].as_i64()
        ),
        (Some("running"), Some(2))
    );

    let (status, search) = call("GET", format!("{base}/searches/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(search["trial_counts"]["pending"], 2);
    let (_, trials) = call("GET", format!("{base}/searches/{id}/trials"), None).await;
    let first = trials["trials"][0]["id"].as_i64().expect("trial id");
    let (status, trial) = call("GET", format!("{base}/trials/{first}"), None).await;
    assert_eq!((status, trial["state"].as_str()), (200, Some("pending")));
    let (status, arch) = call("GET", format!("{base}/trials/{first}/architecture"), None).await;
    assert_eq!(status, 200);
    search::Architecture::from_value(arch).expect("a loadable architecture");
    let (status, body) = call("GET", format!("{base}/trials/{first}/weights"), None).await;
    assert_eq!(
        (status, error_code(&body)),
        (404, "not_found"),
        "not trained yet: {body}"
    );
    let (_, zoo) = call("GET", format!("{base}/zoo"), None).await;
    let lenet = zoo["zoo"]
        .as_array()
        .and_then(|z| z.iter().find(|e| e["name"] == "lenet5"))
        .cloned();
    assert_eq!(lenet.map(|e| e["params"].clone()), Some(json!(61_706)));
    let (_, spaces) = call("GET", format!("{base}/spaces"), None).await;
    assert!(spaces["presets"]["micro"]["ops"].is_array(), "{spaces}");
    let (_, list) = call("GET", format!("{base}/searches"), None).await;
    assert_eq!(list["searches"].as_array().map(Vec::len), Some(1));

    assert_eq!(
        call("POST", format!("{base}/searches/{id}/cancel"), None)
            .await
            .0,
        200
    );
    let (status, body) = call("POST", format!("{base}/searches/{id}/cancel"), None).await;
    assert_eq!((status, error_code(&body)), (409, "conflict"), "{body}");

    // Bad input: status, code, and the field where there is one.
    let (status, body) = call(
        "POST",
        format!("{base}/searches"),
        Some("{\"name\": ".into()),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "malformed_json"),
        "{body}"
    );
    let bad = json!({"name": "x", "dataset": "mnist", "objective": {"latency": {"target_ms": -1}}});
    let (status, body) = call("POST", format!("{base}/searches"), Some(bad.to_string())).await;
    assert_eq!((status, error_code(&body)), (422, "invalid_spec"), "{body}");
    assert_eq!(body["error"]["field"], "objective.latency.target_ms");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("must be > 0"),
        "{body}"
    );
    let bad = json!({"name": "x", "dataset": "imagenet"});
    let (status, body) = call("POST", format!("{base}/searches"), Some(bad.to_string())).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("dataset")),
        "{body}"
    );
    let bad = json!({"name": "x", "dataset": "mnist", "colour": "blue"});
    let (status, body) = call("POST", format!("{base}/searches"), Some(bad.to_string())).await;
    assert_eq!((status, error_code(&body)), (422, "invalid_spec"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("colour"),
        "{body}"
    );
    let huge = json!({"name": "x".repeat(300_000), "dataset": "mnist"});
    let (status, body) = call("POST", format!("{base}/searches"), Some(huge.to_string())).await;
    assert_eq!(
        (status, error_code(&body)),
        (413, "body_too_large"),
        "{body}"
    );
    for path in ["searches/999", "searches/abc", "trials/0", "nowhere"] {
        let (status, body) = call("GET", format!("{base}/{path}"), None).await;
        assert_eq!(
            (status, error_code(&body)),
            (404, "not_found"),
            "{path}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_contract_on_sqlite() {
    api_contract(testing::fresh_sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_contract_on_postgres() {
    api_contract(testing::fresh_postgres_url().await.expect("postgres")).await;
}

//! The HTTP API over real HTTP on port 0, on SQLite and on PostgreSQL:
//! create, read, cancel, every error with its status and JSON body; a real
//! search trained by in-process workers to its leaderboard, Pareto front and
//! weights; live events; auth; the OpenAPI document.

mod common;

use std::io::BufRead;
use std::time::{Duration, Instant};

use common::{get, post, request, serve};
use serde_json::{json, Value};
use server::api::Auth;
use store::{testing, WorkerInfo};

async fn call(method: &'static str, url: String, body: Option<String>) -> (u16, Value) {
    match method {
        "GET" => get(url).await,
        _ => post(url, body).await,
    }
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error.code>")
}

async fn api_contract(url: String) {
    let live = serve(&url, Auth::open(), 0).await;
    let base = live.base.clone();
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
    let (status, body) = call("GET", format!("{base}/trials/{first}/model.onnx"), None).await;
    assert_eq!(
        (status, error_code(&body)),
        (409, "not_exportable"),
        "not trained yet: {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is pending")),
        "{body}"
    );
    let (status, body) = call("GET", format!("{base}/trials/987654/model.onnx"), None).await;
    assert_eq!((status, error_code(&body)), (404, "not_found"), "{body}");
    let (_, zoo) = call("GET", format!("{base}/zoo"), None).await;
    let lenet = zoo["zoo"]
        .as_array()
        .and_then(|z| z.iter().find(|e| e["name"] == "lenet5"))
        .cloned();
    assert_eq!(lenet.map(|e| e["params"].clone()), Some(json!(61_706)));
    let (_, spaces) = call("GET", format!("{base}/spaces"), None).await;
    assert!(spaces["presets"]["micro"]["ops"].is_array(), "{spaces}");
    let (_, kinds) = call("GET", format!("{base}/layer-kinds"), None).await;
    let listed: Vec<&str> = kinds["kinds"]
        .as_array()
        .map(|k| k.iter().filter_map(|k| k["kind"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(listed, search::arch::LayerKind::names(), "{kinds}");
    assert!(
        kinds["kinds"]
            .as_array()
            .is_some_and(|k| k.iter().all(|k| k["colour"]
                .as_str()
                .is_some_and(|c| c.len() == 7 && c.starts_with('#')))),
        "{kinds}"
    );
    let (_, list) = call("GET", format!("{base}/searches"), None).await;
    assert_eq!(list["searches"].as_array().map(Vec::len), Some(1));

    // Leaderboards, Pareto fronts and lists, and their query errors.
    let (status, board) = call("GET", format!("{base}/searches/{id}/leaderboard"), None).await;
    assert_eq!((status, board["total"].as_i64()), (200, Some(0)), "{board}");
    let (status, front) = call("GET", format!("{base}/searches/{id}/pareto"), None).await;
    assert_eq!(
        (status, front["points"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    for (query, code, field) in [
        ("leaderboard?limit=0", "invalid_query", Some("limit")),
        ("leaderboard?limit=5000", "invalid_query", Some("limit")),
        ("leaderboard?sort=colour", "invalid_query", None),
        (
            "leaderboard?cursor=nonsense",
            "invalid_cursor",
            Some("cursor"),
        ),
        ("pareto?front_only=maybe", "invalid_query", None),
    ] {
        let answer = request(
            "GET",
            format!("{base}/searches/{id}/{query}"),
            None,
            None,
            None,
        )
        .await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, code.to_owned()),
            "{query}: {}",
            answer.text
        );
        assert_eq!(answer.json()["error"]["field"].as_str(), field, "{query}");
    }
    let (status, body) = call("GET", format!("{base}/searches?status=paused"), None).await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "invalid_query"),
        "{body}"
    );
    let (status, list) = call(
        "GET",
        format!("{base}/searches?status=running&limit=1"),
        None,
    )
    .await;
    assert_eq!(
        (status, list["searches"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let (status, workers) = call("GET", format!("{base}/workers"), None).await;
    assert_eq!(
        (status, workers["workers"].as_array().map(Vec::len)),
        (200, Some(0))
    );

    // Final training: not while running, bounded, 404 for unknown searches.
    let (status, body) = call(
        "POST",
        format!("{base}/searches/{id}/final"),
        Some("{}".into()),
    )
    .await;
    assert_eq!((status, error_code(&body)), (409, "conflict"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("still running") && m.contains("`running`")),
        "{body}"
    );
    let (status, body) = call(
        "POST",
        format!("{base}/searches/999999/final"),
        Some("{}".into()),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = call(
        "POST",
        format!("{base}/searches/{id}/final"),
        Some(r#"{"top_k": "three"}"#.into()),
    )
    .await;
    assert!(matches!(status, 400 | 422), "{status} {body}");
    // No body at all means the defaults (the document requires none), and
    // a whole number written as a float is that integer (JSON Schema's
    // integers): both reach the store's check, a 409 here.
    for body in [None, Some(r#"{"top_k": 2.0, "epochs": 347.0}"#.to_owned())] {
        let (status, answer) = call("POST", format!("{base}/searches/{id}/final"), body).await;
        assert_eq!((status, error_code(&answer)), (409, "conflict"), "{answer}");
    }
    let (status, body) = call("GET", format!("{base}/searches/{id}/final"), None).await;
    assert_eq!(
        (status, body["trials"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let bad_asha =
        json!({"name": "x", "dataset": "mnist", "scheduler": {"kind": "asha", "eta": 1}});
    let (status, body) = call(
        "POST",
        format!("{base}/searches"),
        Some(bad_asha.to_string()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("scheduler.eta")),
        "{body}"
    );
    let bad_final = json!({"name": "x", "dataset": "mnist", "budget": {"max_trials": 2}, "final": {"top_k": 3}});
    let (status, body) = call(
        "POST",
        format!("{base}/searches"),
        Some(bad_final.to_string()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("final.top_k")),
        "{body}"
    );

    assert_eq!(
        call("POST", format!("{base}/searches/{id}/cancel"), None)
            .await
            .0,
        200
    );
    let (status, body) = call(
        "POST",
        format!("{base}/searches/{id}/final"),
        Some("{}".into()),
    )
    .await;
    assert_eq!((status, error_code(&body)), (409, "conflict"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cancelled")),
        "{body}"
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
            .contains("must be between"),
        "{body}"
    );
    // Resource bombs and poisoned numbers: each refused, naming its field.
    let huge_space = json!({"ops": ["conv"], "channels": [4096], "kernels": [15],
        "depth": {"min": 1, "max": 64}, "stem": {"channels": [4096]}, "head": {"pooling": "flatten", "hidden": [65536]}});
    let cases = [
        (json!({"space": huge_space}), "space", "parameters"),
        (
            json!({"training": {"batch_size": 4294967295u64}}),
            "training.batch_size",
            "between 1 and 4096",
        ),
        (
            json!({"training": {"val_fraction": 0}}),
            "training.val_fraction",
            "validation",
        ),
        (json!({"name": "a\u{0}b"}), "name", "control characters"),
        (
            json!({"budget": {"max_trials": 10000, "parallelism": 10000}}),
            "budget.parallelism",
            "between 1 and 1000",
        ),
        (
            json!({"max_attempts": 100}),
            "max_attempts",
            "between 1 and 10",
        ),
        (
            json!({"objective": {"latency": {"target_ms": 0.5, "alpha": -100}}}),
            "objective.latency.alpha",
            "between -2 and 0",
        ),
        (
            json!({"space": {"ops": ["se"], "channels": [8], "kernels": [3], "depth": {"min": 1, "max": 2},
            "stem": {"channels": [8]}, "head": {"pooling": "global_avg"}, "se_reduction": 1000000}}),
            "space",
            "se_reduction",
        ),
        (
            json!({"labels": ["x".repeat(65)]}),
            "labels[0]",
            "at most 64",
        ),
        (
            json!({"objective": {"latency": {"target_ms": 1.0, "device": ["avx2", "a,b"]}}}),
            "objective.latency.device[1]",
            "commas",
        ),
        (
            json!({"objective": {"kind": "pareto", "metrics": ["accuracy", "latency", "latency"], "latency": {"max_ms": 2}}}),
            "objective.metrics[2]",
            "named twice",
        ),
        (
            json!({"objective": {"kind": "pareto", "metrics": ["accuracy"]}}),
            "objective.metrics",
            "2 to 3 metrics",
        ),
        (
            json!({"objective": {"kind": "pareto", "metrics": ["accuracy", "latency"], "reference": {"accuracy": 1.5, "latency_ms": 1}}}),
            "objective.reference.accuracy",
            "no accuracy can beat",
        ),
        (
            json!({"objective": {"kind": "pareto", "metrics": ["accuracy", "latency"]}}),
            "objective.reference.latency_ms",
            "max_ms",
        ),
        (
            json!({"budget": {"max_trials": 3}, "final": {"top_k": 4}}),
            "final.top_k",
            "must not exceed budget.max_trials",
        ),
    ];
    for (patch, field, says) in cases {
        let mut spec = json!({"name": "bomb", "dataset": "mnist"});
        for (k, v) in patch.as_object().into_iter().flatten() {
            spec[k] = v.clone();
        }
        let (status, body) = call("POST", format!("{base}/searches"), Some(spec.to_string())).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some(field)),
            "{spec}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(says), "{field}: {message}");
    }
    let bad = json!({"name": "x", "dataset": "imagenet"});
    let (status, body) = call("POST", format!("{base}/searches"), Some(bad.to_string())).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("dataset")),
        "{body}"
    );
    let bad = json!({"name": "x", "dataset": "mnist",
        "objective": {"kind": "pareto", "metrics": ["accuracy", "speed"]}});
    let (status, body) = call("POST", format!("{base}/searches"), Some(bad.to_string())).await;
    assert_eq!((status, error_code(&body)), (422, "invalid_spec"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("speed"),
        "an unknown metric is named: {body}"
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
    for path in [
        "searches/999",
        "searches/abc",
        "searches/999/leaderboard",
        "searches/999/pareto",
        "trials/0",
        "nowhere",
    ] {
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

/// Reads an SSE stream on a thread; sends `(event name, data, when)` per event.
fn listen(url: String) -> std::sync::mpsc::Receiver<(String, String, Instant)> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let response = ureq::get(&url).call().expect("event stream");
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        let _ = tx.send(("connected".into(), String::new(), Instant::now()));
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        let mut name = String::new();
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_owned();
            } else if let Some(data) = line.strip_prefix("data: ") {
                if tx
                    .send((name.clone(), data.to_owned(), Instant::now()))
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    rx
}

async fn events_arrive_within_a_second(url: String) {
    let live = serve(&url, Auth::open(), 0).await;
    let base = live.base.clone();
    let spec =
        json!({"name": "sse", "dataset": "mnist", "budget": {"max_trials": 2, "parallelism": 1}});
    let (_, other) = post(format!("{base}/searches"), Some(spec.to_string())).await;
    let (_, created) = post(format!("{base}/searches"), Some(spec.to_string())).await;
    let id = created["id"].as_i64().expect("id");
    let other = other["id"].as_i64().expect("id");
    let events = listen(format!("{base}/events?search={id}"));
    let (name, _, _) = events
        .recv_timeout(Duration::from_secs(5))
        .expect("connects");
    assert_eq!(name, "connected");
    let worker = WorkerInfo {
        id: "sse-worker".into(),
        host: "test".into(),
        labels: vec![],
        threads: 1,
        device: "test".into(),
        profile: None,
    };
    live.store.register_worker(&worker).await.expect("register");
    // The other search's trial is older: claimed first, and filtered out.
    let first = live
        .store
        .claim(&worker)
        .await
        .expect("claim")
        .expect("trial");
    assert_eq!(first.search_id, other);
    let claimed = live
        .store
        .claim(&worker)
        .await
        .expect("claim")
        .expect("trial");
    let changed = Instant::now();
    let (name, data, when) = events
        .recv_timeout(Duration::from_secs(5))
        .expect("an event");
    assert_eq!(name, "trial_claimed", "{data}");
    let event: Value = serde_json::from_str(&data).expect("JSON data");
    assert_eq!(
        (event["search_id"].as_i64(), event["trial_id"].as_i64()),
        (Some(id), Some(claimed.id))
    );
    let delay = when.saturating_duration_since(changed);
    assert!(delay < Duration::from_secs(1), "the event took {delay:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_within_a_second_on_sqlite() {
    events_arrive_within_a_second(testing::fresh_sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_within_a_second_on_postgres() {
    events_arrive_within_a_second(testing::fresh_postgres_url().await.expect("postgres")).await;
}

/// Submit -> in-process workers train -> leaderboard, CSV, Pareto, trial, weights, workers, metrics.
async fn a_search_trains_to_its_leaderboard(url: String) {
    let live = serve(&url, Auth::open(), 2).await;
    let base = live.base.clone();
    let spec = json!({
        "name": "e2e", "dataset": "mnist", "strategy": {"kind": "random"}, "seed": 3,
        "objective": {"latency": {"target_ms": 1.0}},
        "budget": {"max_trials": 3, "parallelism": 2, "epochs": 1, "max_train_samples": 4096},
        "training": {"learning_rate": 0.005}
    });
    let (status, created) = post(format!("{base}/searches"), Some(spec.to_string())).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().expect("id");
    let deadline = Instant::now() + Duration::from_secs(300);
    let detail = loop {
        let (_, detail) = get(format!("{base}/searches/{id}")).await;
        if detail["status"] != "running" {
            break detail;
        }
        assert!(Instant::now() < deadline, "search still running: {detail}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(detail["status"], "finished", "{detail}");
    assert_eq!(detail["trial_counts"]["succeeded"], 3, "{detail}");
    assert_eq!(detail["progress"]["fraction"], 1.0);

    let (status, board) = get(format!("{base}/searches/{id}/leaderboard?limit=2")).await;
    assert_eq!((status, board["total"].as_i64()), (200, Some(3)), "{board}");
    let entries = board["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 2);
    assert!(entries[0]["reward"].as_f64() >= entries[1]["reward"].as_f64());
    assert_eq!(detail["best_trial"]["trial_id"], entries[0]["trial_id"]);
    // A latency target gives a reference point (twice it): hypervolumes.
    let validated = detail["hypervolume"]["validated"]
        .as_f64()
        .expect("hypervolume");
    assert!((0.0..=1.0).contains(&validated), "{detail}");
    assert_eq!(detail["hypervolume"]["reference"], json!([0.0, 2.0]));
    let (_, pareto) = get(format!("{base}/searches/{id}/pareto")).await;
    assert_eq!(
        pareto["hypervolume"]["validated"],
        detail["hypervolume"]["validated"]
    );
    assert_eq!(
        pareto["hypervolume"]["over_compute"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert_eq!(pareto["tested"], json!([]), "no final models: {pareto}");
    assert!(pareto["points"][0]["front"].as_i64() == Some(0), "{pareto}");
    let (status, by_rank) = get(format!("{base}/searches/{id}/leaderboard?sort=rank")).await;
    assert_eq!(
        (status, by_rank["total"].as_i64()),
        (200, Some(3)),
        "{by_rank}"
    );
    assert_eq!(by_rank["entries"][0]["front"], 0, "{by_rank}");
    let accuracy = entries[0]["accuracy"].as_f64().expect("accuracy");
    let (_, trials) = get(format!("{base}/searches/{id}/trials")).await;
    assert!(
        accuracy > 0.2 && accuracy <= 1.0,
        "trained on real data: {accuracy} {trials:#}"
    );
    let cursor = board["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let (_, rest) = get(format!(
        "{base}/searches/{id}/leaderboard?limit=2&cursor={cursor}"
    ))
    .await;
    assert_eq!(rest["entries"][0]["rank"], 3);
    assert!(rest["next_cursor"].is_null());

    let csv = request(
        "GET",
        format!("{base}/searches/{id}/leaderboard?format=csv&sort=latency&limit=2"),
        None,
        None,
        Some("x-next-cursor"),
    )
    .await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.content_type.starts_with("text/csv"),
        "{}",
        csv.content_type
    );
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines.len(), 3, "{}", csv.text);
    assert!(lines[0].starts_with("rank,trial_id,index,reward,accuracy,latency_ms"));
    assert!(csv.header.is_some_and(|c| c.starts_with("latency_")));

    let (_, pareto) = get(format!("{base}/searches/{id}/pareto")).await;
    let points = pareto["points"].as_array().cloned().unwrap_or_default();
    assert_eq!(points.len(), 3);
    assert!(points.iter().any(|p| p["on_front"] == true));
    let (_, front) = get(format!("{base}/searches/{id}/pareto?front_only=true")).await;
    assert!(front["points"]
        .as_array()
        .is_some_and(|f| f.iter().all(|p| p["on_front"] == true)));

    let (_, thin) = get(format!("{base}/searches/{id}/pareto?max_points=1")).await;
    assert_eq!(thin["total_points"], 3);
    let front_size = points.iter().filter(|p| p["on_front"] == true).count();
    assert_eq!(
        thin["points"].as_array().map(Vec::len),
        Some(front_size.max(1)),
        "the front is always kept"
    );
    let steps = thin["best_so_far"].as_array().cloned().unwrap_or_default();
    assert!(!steps.is_empty());
    assert!(steps
        .windows(2)
        .all(|w| w[0]["reward"].as_f64() < w[1]["reward"].as_f64()
            && w[0]["index"].as_i64() < w[1]["index"].as_i64()));
    assert_eq!(
        steps.last().map(|s| s["reward"].clone()),
        Some(entries[0]["reward"].clone())
    );
    let (_, done) = get(format!("{base}/searches/{id}/trials?state=succeeded")).await;
    assert_eq!(done["trials"].as_array().map(Vec::len), Some(3));
    let (_, running) = get(format!("{base}/searches/{id}/trials?state=running")).await;
    assert_eq!(running["trials"].as_array().map(Vec::len), Some(0));

    let best = entries[0]["trial_id"].as_i64().expect("trial id");
    let (_, trial) = get(format!("{base}/trials/{best}")).await;
    assert_eq!(trial["state"], "succeeded");
    assert_eq!(trial["epochs"].as_array().map(Vec::len), Some(1), "{trial}");
    assert!(
        trial["result"]["latency_ms"]["p50"].as_f64().is_some(),
        "{trial}"
    );
    let weights = request(
        "GET",
        format!("{base}/trials/{best}/weights"),
        None,
        None,
        Some("content-disposition"),
    )
    .await;
    assert_eq!(weights.status, 200);
    assert!(weights
        .header
        .is_some_and(|d| d.contains(&format!("trial-{best}.safetensors"))));
    let model = request(
        "GET",
        format!("{base}/trials/{best}/model.onnx"),
        None,
        None,
        Some("content-disposition"),
    )
    .await;
    assert_eq!(model.status, 200, "{}", model.text);
    assert!(model
        .header
        .is_some_and(|d| d.contains(&format!("trial-{best}.onnx"))));

    let (_, workers) = get(format!("{base}/workers")).await;
    let workers = workers["workers"].as_array().cloned().unwrap_or_default();
    assert_eq!(workers.len(), 2);
    assert!(workers.iter().all(|w| w["alive"] == true), "{workers:?}");

    let metrics = request("GET", format!("{base}/metrics"), None, None, None).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.content_type.starts_with("text/plain"));
    for line in [
        "nas_trials{state=\"succeeded\"} 3",
        "nas_searches{status=\"finished\"} 1",
        "nas_queue_depth 0",
        "nas_workers_alive 2",
        "nas_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/searches/{id}/leaderboard\",le=\"+Inf\"}",
        "nas_http_requests_total{method=\"POST\",route=\"/api/v1/searches\",status=\"201\"} 1",
    ] {
        assert!(metrics.text.contains(line), "missing `{line}` in\n{}", metrics.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_trains_to_its_leaderboard_on_sqlite() {
    a_search_trains_to_its_leaderboard(testing::fresh_sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_trains_to_its_leaderboard_on_postgres() {
    a_search_trains_to_its_leaderboard(testing::fresh_postgres_url().await.expect("postgres"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_writes_and_optionally_reads() {
    let spec = json!({"name": "auth", "dataset": "mnist"}).to_string();
    let writes_only = serve(
        &testing::fresh_sqlite_url(),
        Auth::new(Some("w-token"), None).expect("auth"),
        0,
    )
    .await;
    let base = writes_only.base.clone();
    let refused = request(
        "POST",
        format!("{base}/searches"),
        Some(spec.clone()),
        None,
        Some("www-authenticate"),
    )
    .await;
    assert_eq!(
        (refused.status, refused.code()),
        (401, "unauthorized".to_owned()),
        "{}",
        refused.text
    );
    assert_eq!(refused.header.as_deref(), Some("Bearer"));
    let wrong = request(
        "POST",
        format!("{base}/searches"),
        Some(spec.clone()),
        Some("nope"),
        None,
    )
    .await;
    assert_eq!(wrong.status, 401);
    let ok = request(
        "POST",
        format!("{base}/searches"),
        Some(spec.clone()),
        Some("w-token"),
        None,
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(
        get(format!("{base}/searches")).await.0,
        200,
        "reads stay open"
    );
    let cancel = request(
        "POST",
        format!("{base}/searches/1/cancel"),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(cancel.status, 401, "cancel is a write");

    let closed = serve(
        &testing::fresh_sqlite_url(),
        Auth::new(Some("w-token"), Some("r-token")).expect("auth"),
        0,
    )
    .await;
    let base = closed.base.clone();
    assert_eq!(get(format!("{base}/searches")).await.0, 401);
    assert_eq!(get(format!("{base}/metrics")).await.0, 401);
    for token in ["r-token", "w-token"] {
        let a = request("GET", format!("{base}/searches"), None, Some(token), None).await;
        assert_eq!(a.status, 200, "{token}");
    }
    let read_cannot_write = request(
        "POST",
        format!("{base}/searches"),
        Some(spec),
        Some("r-token"),
        None,
    )
    .await;
    assert_eq!(read_cannot_write.status, 401);
    for open in ["healthz", "readyz", "openapi.json"] {
        assert_eq!(
            get(format!("{base}/{open}")).await.0,
            200,
            "{open} needs no token"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_and_schema() {
    let live = serve(&testing::fresh_sqlite_url(), Auth::open(), 0).await;
    let (status, doc) = get(format!("{}/openapi.json", live.base)).await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    let routes = [
        ("post", "/api/v1/searches"),
        ("get", "/api/v1/searches"),
        ("get", "/api/v1/searches/{id}"),
        ("post", "/api/v1/searches/{id}/cancel"),
        ("get", "/api/v1/searches/{id}/trials"),
        ("get", "/api/v1/searches/{id}/leaderboard"),
        ("get", "/api/v1/searches/{id}/pareto"),
        ("get", "/api/v1/searches/{id}/final"),
        ("post", "/api/v1/searches/{id}/final"),
        ("get", "/api/v1/trials/{id}"),
        ("get", "/api/v1/trials/{id}/architecture"),
        ("get", "/api/v1/trials/{id}/weights"),
        ("get", "/api/v1/trials/{id}/model.onnx"),
        ("get", "/api/v1/zoo"),
        ("get", "/api/v1/zoo/{name}"),
        ("get", "/api/v1/spaces"),
        ("get", "/api/v1/layer-kinds"),
        ("get", "/api/v1/datasets"),
        ("post", "/api/v1/datasets"),
        ("get", "/api/v1/datasets/{name}"),
        ("delete", "/api/v1/datasets/{name}"),
        ("get", "/api/v1/datasets/{name}/samples.png"),
        ("get", "/api/v1/workers"),
        ("get", "/api/v1/events"),
        ("get", "/api/v1/healthz"),
        ("get", "/api/v1/readyz"),
        ("get", "/api/v1/metrics"),
        ("get", "/api/v1/openapi.json"),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    let documented: usize = paths
        .values()
        .map(|p| p.as_object().map_or(0, |m| m.len()))
        .sum();
    assert_eq!(documented, routes.len(), "every route, and only those");
    for (method, path) in routes {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
        // Each documented route answers (not the JSON 404 of unknown routes).
        if method == "get" && !path.contains('{') && !path.ends_with("events") {
            let (status, body) =
                get(format!("{}{}", live.base.trim_end_matches("/api/v1"), path)).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
    }
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "SearchSpec",
        "SearchView",
        "SearchDetail",
        "Leaderboard",
        "LeaderboardEntry",
        "ParetoPoint",
        "TrialDetail",
        "WorkerRow",
        "ErrorBody",
        "SearchSpace",
        "Objective",
        "Budget",
        "TrialResult",
        "TrialProgress",
        "AttemptError",
        "DatasetInfo",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    // The trial result is described field by field, with its units.
    let result = &schemas["TrialResult"]["properties"];
    for field in [
        "version",
        "latency_ms",
        "params",
        "macs",
        "device",
        "val_accuracy",
        "test_accuracy",
        "reward",
        "train_seconds",
        "images_per_second",
        "epochs",
    ] {
        assert!(
            result[field]["description"].is_string()
                || result[field]["allOf"].is_array()
                || result[field]["oneOf"].is_array(),
            "TrialResult.{field}: {}",
            result[field]
        );
    }
    // The dataset names are the catalogue's.
    let datasets: Vec<&str> = schemas["SearchSpec"]["properties"]["dataset"]["enum"]
        .as_array()
        .map(|v| v.iter().filter_map(|d| d.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(datasets, search::dataset::names());
}

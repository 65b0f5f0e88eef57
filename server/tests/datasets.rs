//! Uploading a dataset over HTTP: the body streamed to a spool file,
//! decoded once, stored once by content; listed beside the catalogue,
//! shown, removed; bad uploads refused with the row, field or bound named
//! and nothing stored; a write of another type refused.

mod common;

use std::time::Duration;

use serde_json::Value;
use server::api::Auth;
use store::{testing, Store};

/// The tests of this file one at a time: they count this process's spool
/// files, which every upload makes.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Serves the API with uploads of at most `max_mib` MiB.
async fn serve(max_mib: u64) -> (String, Store, common::Live) {
    let live = common::serve_with(&testing::fresh_sqlite_url(), Auth::open(), 0, |state| {
        state.with_max_upload_mib(max_mib)
    })
    .await;
    (live.base.clone(), live.store.clone(), live)
}

/// Sends `body` with `content_type`; status and JSON body.
async fn send(
    method: &'static str,
    url: String,
    content_type: &'static str,
    body: Vec<u8>,
) -> (u16, Value) {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let response = match method {
            "POST" => agent
                .post(&url)
                .header("content-type", content_type)
                .send(&body[..]),
            "DELETE" => agent.delete(&url).call(),
            _ => agent.get(&url).call(),
        };
        let mut response = response.expect("HTTP round trip");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
    .await
    .expect("request")
}

/// Twelve 2x2 images of three classes as a Kaggle-style CSV.
fn csv(label: &str) -> Vec<u8> {
    let mut text = format!("{label},p0,p1,p2,p3\n");
    for i in 0..12 {
        text.push_str(&format!("{},{},{},0,255\n", i % 3, i * 10, 255 - i));
    }
    text.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_is_uploaded_listed_shown_and_removed() {
    let _serial = SERIAL.lock().await;
    let (base, store, _live) = serve(16).await;
    let octet = "application/octet-stream";
    let (status, first) = send(
        "POST",
        format!("{base}/datasets?name=tiny"),
        octet,
        csv("label"),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["new_content"], true);
    let id = first["dataset"]["id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 64, "a SHA-256");
    assert_eq!(
        first["dataset"]["summary"]["input"],
        serde_json::json!([1, 2, 2])
    );
    assert_eq!(
        first["dataset"]["summary"]["class_names"],
        serde_json::json!(["0", "1", "2"])
    );
    assert_eq!(first["dataset"]["summary"]["format"], "csv");
    // The same content again, under another name: stored once.
    let (status, again) = send(
        "POST",
        format!("{base}/datasets?name=tiny-again"),
        octet,
        csv("label"),
    )
    .await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(
        (again["new_content"].clone(), again["dataset"]["id"].clone()),
        (Value::from(false), Value::from(id.clone()))
    );
    // Listed beside the catalogue; shown by name.
    let (status, list) = send("GET", format!("{base}/datasets"), octet, vec![]).await;
    assert_eq!(status, 200);
    assert!(list["datasets"]
        .as_array()
        .is_some_and(|d| d.iter().any(|d| d["name"] == "mnist")));
    let names: Vec<&str> = list["uploaded"]
        .as_array()
        .expect("uploaded")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, ["tiny", "tiny-again"]);
    let (status, shown) = send("GET", format!("{base}/datasets/tiny"), octet, vec![]).await;
    assert_eq!((status, shown["id"].as_str()), (200, Some(id.as_str())));
    // Removed: gone by name, the content kept under its other name.
    assert_eq!(
        send("DELETE", format!("{base}/datasets/tiny"), octet, vec![])
            .await
            .0,
        204
    );
    assert_eq!(
        send("GET", format!("{base}/datasets/tiny"), octet, vec![])
            .await
            .0,
        404
    );
    assert_eq!(store.dataset("tiny-again").await.expect("kept").id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_name_the_problem_and_store_nothing() {
    let _serial = SERIAL.lock().await;
    let (base, store, _live) = serve(1).await;
    let octet = "application/octet-stream";
    let cases: Vec<(String, &'static str, Vec<u8>, u16, &str)> = vec![
        // A non-numeric pixel: the row and column.
        (
            format!("{base}/datasets?name=bad"),
            octet,
            b"label,p0,p1,p2,p3\n1,0,0,0,0\n2,0,x,0,0\n".to_vec(),
            422,
            "row 3, column p1",
        ),
        // No such label column: the option.
        (
            format!("{base}/datasets?name=bad"),
            octet,
            csv("digit"),
            422,
            "label_column",
        ),
        // An empty upload.
        (format!("{base}/datasets?name=bad"), octet, vec![], 422, ""),
        // Over --max-dataset-mib.
        (
            format!("{base}/datasets?name=big"),
            octet,
            vec![b'1'; (1 << 20) + 10],
            413,
            "",
        ),
        // A bad name, and a bad option.
        (
            format!("{base}/datasets?name=..%2Fx"),
            octet,
            csv("label"),
            422,
            "name",
        ),
        (
            format!("{base}/datasets?name=ok&resize=big"),
            octet,
            csv("label"),
            400,
            "resize",
        ),
        (
            format!("{base}/datasets?name=ok&channels=2"),
            octet,
            csv("label"),
            422,
            "channels",
        ),
    ];
    for (url, content_type, body, expected, field) in cases {
        let (status, answer) = send("POST", url.clone(), content_type, body).await;
        assert_eq!(status, expected, "{url}: {answer}");
        if !field.is_empty() {
            assert_eq!(
                answer["error"]["field"].as_str(),
                Some(field),
                "{url}: {answer}"
            );
        }
    }
    // Not a file upload: refused by type before anything is read.
    let (status, answer) = send(
        "POST",
        format!("{base}/datasets?name=t"),
        "text/plain",
        csv("label"),
    )
    .await;
    assert_eq!(status, 415, "{answer}");
    assert!(
        store.datasets().await.expect("list").is_empty(),
        "nothing stored"
    );
    let spool = spool_files();
    assert!(spool.is_empty(), "no spool file left behind: {spool:?}");
}

/// This process's upload spool files in the temp folder.
fn spool_files() -> Vec<std::path::PathBuf> {
    std::fs::read_dir(std::env::temp_dir())
        .expect("temp dir")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("nas-upload-{}-", std::process::id()))
        })
        .map(|e| e.path())
        .collect()
}

/// Runs `nas` with `args` against `base` (the API's `/api/v1` URL).
fn nas(base: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_nas"))
        .args(args)
        .env("NAS_SERVER", base.trim_end_matches("/api/v1"))
        .output()
        .expect("runs nas")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_uploads_a_folder_and_lists_shows_and_removes_it() {
    let _serial = SERIAL.lock().await;
    let (base, store, _live) = serve(64).await;
    // pets/cat/*.png, pets/dog/*.png and a note that is not an image.
    let dir = std::env::temp_dir().join(format!("nas-cli-pets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (class, shade) in [("cat", 40u8), ("dog", 200u8)] {
        std::fs::create_dir_all(dir.join(class)).expect("class folder");
        for i in 0..5u8 {
            image::GrayImage::from_pixel(4, 4, image::Luma([shade + i]))
                .save(dir.join(class).join(format!("{i}.png")))
                .expect("png");
        }
    }
    std::fs::write(dir.join("README.txt"), "photos of pets").expect("note");
    let run = |args: Vec<String>| {
        let base = base.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            nas(&base, &args)
        })
    };
    let folder = dir.display().to_string();
    let added = run(vec![
        "dataset".into(),
        "add".into(),
        folder,
        "--name".into(),
        "pets".into(),
        "--test-fraction".into(),
        "0.4".into(),
    ])
    .await
    .expect("add");
    let out = String::from_utf8_lossy(&added.stdout);
    let err = String::from_utf8_lossy(&added.stderr);
    assert!(added.status.success(), "{out}\n{err}");
    assert!(out.contains("stored `pets`"), "{out}");
    assert!(out.contains("1 non-image files skipped"), "{out}");
    assert!(err.contains("uploading pets"), "a progress line: {err}");
    let stored = store.dataset("pets").await.expect("stored");
    assert_eq!(stored.summary.class_names, ["cat", "dog"]);
    assert_eq!(stored.summary.train_per_class, [3, 3]);
    assert_eq!(stored.summary.test_per_class, [2, 2]);
    assert_eq!(stored.summary.input, [1, 4, 4]);

    let listed = run(vec!["dataset".into(), "list".into()])
        .await
        .expect("list");
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(
        out.contains("fashion-mnist") && out.contains("pets") && out.contains(&stored.id[..12]),
        "{out}"
    );
    let shown = run(vec!["dataset".into(), "show".into(), "pets".into()])
        .await
        .expect("show");
    let out = String::from_utf8_lossy(&shown.stdout);
    assert!(out.contains(&stored.id) && out.contains("dog"), "{out}");

    let removed = run(vec!["dataset".into(), "rm".into(), "pets".into()])
        .await
        .expect("rm");
    assert!(removed.status.success());
    let gone = run(vec!["dataset".into(), "show".into(), "pets".into()])
        .await
        .expect("show");
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("404 not_found"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_off_mid_stream_leaves_nothing_behind() {
    let _serial = SERIAL.lock().await;
    use std::io::Write;
    let (base, store, _live) = serve(16).await;
    let authority = base
        .trim_start_matches("http://")
        .trim_end_matches("/api/v1")
        .to_owned();
    let spooled = || spool_files().len();
    let stream = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&authority).expect("connect");
        write!(
            stream,
            "POST /api/v1/datasets?name=cut HTTP/1.1\r\nHost: {authority}\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
        )
        .expect("headers");
        stream
            .write_all(&[b'x'; 200_000])
            .expect("part of the body");
        stream.flush().expect("flush");
        stream
    })
    .await
    .expect("client");
    // The body is being spooled...
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while spooled() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(spooled(), 1, "the upload streams to a spool file");
    // ... when the client goes away with 800,000 bytes still to send.
    drop(stream);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while spooled() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(spooled(), 0, "the partial spool file is removed");
    assert!(
        store.datasets().await.expect("list").is_empty(),
        "nothing stored"
    );
}

//! The HTTP protections, over raw HTTP/1.1 (to send the headers a hostile
//! page or a rebinding attack would): cross-site writes, foreign `Host`
//! names, non-JSON writes, security headers, the event-stream limit, and
//! metrics that unknown methods cannot grow.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use server::api::{router, AppState, Auth, HostPolicy};
use store::{testing, QueueConfig, Store};

/// A server bound to loopback with the loopback host policy and one
/// event stream at most.
async fn server() -> (SocketAddr, Store) {
    let store = Store::connect(&testing::fresh_sqlite_url(), QueueConfig::default())
        .await
        .expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let state = AppState::new(store.clone(), Auth::open())
        .with_hosts(HostPolicy::loopback(&[]))
        .with_max_streams(1);
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    (address, store)
}

/// Status line's code and the lowercased response head.
fn send(address: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut body = String::new();
    if !head.contains("text/event-stream") {
        reader.read_to_string(&mut body).ok();
    }
    (code, head + &body)
}

fn post(address: SocketAddr, path: &str, headers: &str) -> (u16, String) {
    send(
        address,
        &format!("POST {path} HTTP/1.1\r\nHost: {address}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_and_every_answer_is_hardened() {
    let (address, store) = server().await;
    let spec = serde_json::from_str(
        r#"{"name": "victim", "dataset": "mnist", "budget": {"max_trials": 2}}"#,
    )
    .expect("spec");
    let id = store.create_search(&spec).await.expect("create");
    let cancel = format!("/api/v1/searches/{id}/cancel");
    let answers = tokio::task::spawn_blocking(move || {
        let form = post(
            address,
            &cancel,
            "Origin: http://evil.example\r\nContent-Type: application/x-www-form-urlencoded\r\n",
        );
        let json_cross = post(
            address,
            &cancel,
            "Origin: http://evil.example\r\nContent-Type: application/json\r\n",
        );
        let fetch_cross = post(
            address,
            &cancel,
            "Sec-Fetch-Site: cross-site\r\nContent-Type: application/json\r\n",
        );
        // Not cross-site, but not JSON either (a form or a plain-text
        // write from a client that sends no Origin).
        let no_type = post(address, &cancel, "Content-Type: text/plain\r\n");
        let trace = send(
            address,
            &format!("TRACE {cancel} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"),
        );
        let rebound = send(
            address,
            "GET /api/v1/searches HTTP/1.1\r\nHost: evil.example:8080\r\nConnection: close\r\n\r\n",
        );
        let page = send(
            address,
            &format!(
                "GET / HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
                address.port()
            ),
        );
        (form, json_cross, fetch_cross, no_type, rebound, page, trace)
    })
    .await
    .expect("requests");
    let (form, json_cross, fetch_cross, no_type, rebound, page, trace) = answers;
    // A method the route does not have is a JSON 405, before any check of
    // the body.
    assert_eq!(trace.0, 405, "{}", trace.1);
    assert!(trace.1.contains("method_not_allowed"), "{}", trace.1);
    assert_eq!(form.0, 403, "{}", form.1);
    assert!(form.1.contains("cross_site_write"), "{}", form.1);
    assert_eq!(json_cross.0, 403, "{}", json_cross.1);
    assert_eq!(fetch_cross.0, 403, "{}", fetch_cross.1);
    assert_eq!(no_type.0, 415, "{}", no_type.1);
    assert_eq!(rebound.0, 403, "{}", rebound.1);
    assert!(rebound.1.contains("host_not_allowed"), "{}", rebound.1);
    assert_eq!(page.0, 200, "{}", page.1);
    for head in [&form.1, &rebound.1, &page.1] {
        assert!(
            head.contains("content-security-policy: default-src 'none'"),
            "{head}"
        );
        assert!(head.contains("frame-ancestors 'none'"), "{head}");
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
        assert!(head.contains("referrer-policy: no-referrer"), "{head}");
    }
    assert_eq!(
        store.search(id).await.expect("search").status,
        store::SearchStatus::Running,
        "no hostile request cancelled the search"
    );
    // The same write from the dashboard itself (same origin, JSON) works.
    let cancel = format!("/api/v1/searches/{id}/cancel");
    let own = tokio::task::spawn_blocking(move || {
        post(
            address,
            &cancel,
            &format!("Origin: http://{address}\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/json\r\n"),
        )
    })
    .await
    .expect("request");
    assert_eq!(own.0, 200, "{}", own.1);
    // A write with no body needs no Content-Type (`curl -X POST .../cancel`).
    let other = store.create_search(&spec).await.expect("create");
    let cancel = format!("/api/v1/searches/{other}/cancel");
    let bare = tokio::task::spawn_blocking(move || post(address, &cancel, ""))
        .await
        .expect("request");
    assert_eq!(bare.0, 200, "{}", bare.1);
    assert_eq!(
        store.search(other).await.expect("search").status,
        store::SearchStatus::Cancelled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_limited_and_unknown_methods_share_one_series() {
    let (address, _store) = server().await;
    let (first, second, third, metrics) = tokio::task::spawn_blocking(move || {
        let open = format!("GET /api/v1/events HTTP/1.1\r\nHost: {address}\r\n\r\n");
        let mut held = TcpStream::connect(address).expect("connect");
        held.write_all(open.as_bytes()).expect("write");
        let mut line = String::new();
        BufReader::new(held.try_clone().expect("clone"))
            .read_line(&mut line)
            .expect("status");
        let first = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let second = send(address, &open.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n"));
        drop(held);
        std::thread::sleep(Duration::from_millis(300));
        let mut third = send(address, &open.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n"));
        for _ in 0..20 {
            if third.0 == 200 {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
            third = send(address, &open.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n"));
        }
        for method in ["BREW", "PROPFIND", "XYZZY"] {
            send(
                address,
                &format!("{method} /api/v1/searches HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"),
            );
        }
        let metrics = send(
            address,
            &format!("GET /api/v1/metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"),
        );
        (first, second, third, metrics)
    })
    .await
    .expect("requests");
    assert_eq!(first, "200");
    assert_eq!(second.0, 503, "{}", second.1);
    assert!(second.1.contains("too_many_streams"), "{}", second.1);
    assert_eq!(third.0, 200, "a closed stream frees its place");
    assert!(
        !metrics.1.contains("brew") && !metrics.1.contains("xyzzy"),
        "{}",
        metrics.1
    );
}

/// At most N connections: one more is answered 503 and closed; a client
/// that never finishes its headers is cut off at the deadline, freeing its
/// place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_limited_and_slow_headers_cut_off() {
    use server::api::listener::LimitedListener;
    let store = Store::connect(&testing::fresh_sqlite_url(), QueueConfig::default())
        .await
        .expect("store");
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = tcp.local_addr().expect("address");
    let listener = LimitedListener::new(tcp, 2, Duration::from_millis(500));
    let app = router(AppState::new(store, Auth::open()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (busy, after) = tokio::task::spawn_blocking(move || {
        // Two slow clients: half a request line each.
        let mut slow: Vec<TcpStream> = (0..2)
            .map(|_| {
                let mut s = TcpStream::connect(address).expect("connect");
                s.write_all(b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n")
                    .expect("write");
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let busy = send(
            address,
            &format!(
                "GET /api/v1/healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
            ),
        );
        // Past the header deadline the slow ones are closed and places free up.
        std::thread::sleep(Duration::from_millis(900));
        for s in &mut slow {
            let mut rest = Vec::new();
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            let _ = s.read_to_end(&mut rest);
        }
        let after = send(
            address,
            &format!(
                "GET /api/v1/healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
            ),
        );
        (busy, after)
    })
    .await
    .expect("requests");
    assert_eq!(busy.0, 503, "{}", busy.1);
    assert!(busy.1.contains("too_many_connections"), "{}", busy.1);
    assert_eq!(after.0, 200, "{}", after.1);
}

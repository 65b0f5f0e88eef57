//! The dashboard in real headless Chromium (driven through chromedriver):
//! create a search from the form (a bad value first, shown beside its
//! field), watch its first trial appear without a reload, sort the
//! leaderboard, open a trial and see its diagram and curves, cancel the
//! search; the zoo and workers pages. Screenshots go to target/screenshots/.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use server::api::Auth;
use store::testing;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn browser() -> (Driver, Client) {
    let port = free_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (apt-get install chromium chromium-driver; .ci/run does)");
    let driver = Driver(driver);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1100"]}),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return (driver, client),
            Err(e) if Instant::now() > deadline => panic!("no browser session: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

async fn shot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(shots().join(format!("{name}.png")), png).expect("write screenshot");
}

/// Waits until the page's script says it rendered (or failed).
async fn ready(client: &Client) {
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("body[data-ready]"))
        .await
        .expect("the page renders");
    let state = client
        .execute("return document.body.dataset.ready", vec![])
        .await
        .expect("script");
    assert_eq!(state, "true", "the page reported an error");
}

/// The text of every element matching `css`, read in one script call (live
/// pages re-render, so element handles may go stale between calls).
async fn texts(client: &Client, css: &str) -> Vec<String> {
    let value = client
        .execute(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent.trim())",
            vec![serde_json::json!(css)],
        )
        .await
        .expect("script");
    serde_json::from_value(value).expect("strings")
}

/// The attribute `name` of the first element matching `css`, read in one
/// script call (no element handle to go stale under a live re-render).
async fn attribute(client: &Client, css: &str, name: &str) -> Option<String> {
    let value = client
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null",
            vec![serde_json::json!(css), serde_json::json!(name)],
        )
        .await
        .expect("script");
    serde_json::from_value(value).expect("a string or null")
}

/// Clicks the first element matching `css` on a live page: a reference that
/// went stale between finding and clicking (the page re-rendered) is found
/// again, a few times at most.
async fn click_live(client: &Client, css: &str) {
    for _ in 0..10 {
        let element = client.find(Locator::Css(css)).await.expect(css);
        match element.click().await {
            Ok(()) => return,
            Err(e) if format!("{e:?}").contains("StaleElementReference") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("click {css}: {e:?}"),
        }
    }
    panic!("{css} went stale at every try");
}

async fn set(client: &Client, id: &str, value: &str) {
    let field = client.find(Locator::Id(id)).await.expect(id);
    field.clear().await.expect("clear");
    field.send_keys(value).await.expect("type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_from_the_form_to_cancel_in_a_real_browser() {
    let live = common::serve(&testing::fresh_sqlite_url(), Auth::open(), 1).await;
    let root = live.base.trim_end_matches("/api/v1").to_owned();
    let (_driver, c) = browser().await;

    // The form: a bad value is shown beside its field; then a good spec.
    c.goto(&format!("{root}/searches/new")).await.expect("goto");
    ready(&c).await;
    set(&c, "f-name", "browser search").await;
    c.find(Locator::Css("#f-dataset option[value='mnist']"))
        .await
        .expect("mnist")
        .click()
        .await
        .expect("select");
    c.find(Locator::Css("#f-space option[value='micro']"))
        .await
        .expect("micro")
        .click()
        .await
        .expect("select");
    c.find(Locator::Css("#f-strategy-kind option[value='random']"))
        .await
        .expect("random")
        .click()
        .await
        .expect("select");
    set(&c, "f-objective-latency-target_ms", "-1").await;
    set(&c, "f-budget-max_trials", "200").await;
    set(&c, "f-budget-parallelism", "1").await;
    set(&c, "f-budget-max_train_samples", "512").await;
    set(&c, "f-baselines", "lenet5").await;
    let preview = c
        .find(Locator::Id("preview"))
        .await
        .expect("preview")
        .text()
        .await
        .expect("text");
    assert!(preview.contains("\"max_trials\": 200"), "{preview}");
    assert!(preview.contains("\"lenet5\""), "{preview}");
    assert!(
        preview.contains("\"kind\": \"asha\""),
        "ASHA by default: {preview}"
    );
    shot(&c, "new-search").await;
    // This search trains every trial one epoch (the ASHA page has its own test).
    c.find(Locator::Css("#f-scheduler-kind option[value='none']"))
        .await
        .expect("no scheduler")
        .click()
        .await
        .expect("select");
    c.find(Locator::Id("submit"))
        .await
        .expect("submit")
        .click()
        .await
        .expect("click");
    let error = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(
            "[data-field='objective.latency.target_ms'].invalid .error",
        ))
        .await
        .expect("the API's message beside the field");
    assert!(error
        .text()
        .await
        .expect("text")
        .contains("must be between"));
    set(&c, "f-objective-latency-target_ms", "1").await;
    c.find(Locator::Id("submit"))
        .await
        .expect("submit")
        .click()
        .await
        .expect("click");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = c.current_url().await.expect("url");
        if url.path().starts_with("/searches/") && !url.path().ends_with("/new") {
            break;
        }
        assert!(Instant::now() < deadline, "still at {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ready(&c).await;
    // A mark that a reload would erase.
    c.execute("window.__stayed = true", vec![])
        .await
        .expect("mark");

    // The first trained trial appears live.
    c.wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("#leaderboard tbody a"))
        .await
        .expect("a trained trial appears without a reload");
    let stayed = c
        .execute("return window.__stayed === true", vec![])
        .await
        .expect("mark");
    assert_eq!(stayed, true, "the page was reloaded");
    c.wait()
        .at_most(Duration::from_secs(90))
        .for_element(Locator::Css("#leaderboard tbody tr:nth-child(3) a"))
        .await
        .expect("three trials");
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#scatter svg circle"))
        .await
        .expect("scatter points");
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#leaderboard .badge.baseline"))
        .await
        .expect("the zoo baseline's row, marked");
    assert_eq!(
        texts(&c, "#leaderboard .badge.baseline").await,
        ["zoo: lenet5"]
    );
    // No stray text (such as a rendered `null`) between the title and the facts.
    let stray = c
        .execute(
            "return [...document.querySelector('main').childNodes].concat([...document.querySelectorAll('main > *')].flatMap(e => [...e.childNodes])).filter(n => n.nodeType === 3 && n.textContent.trim() === 'null').length",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(stray, 0, "a stray `null` text node on the search page");
    shot(&c, "search").await;
    let blocks = texts(&c, "#leaderboard tbody td.blocks").await;
    assert!(blocks.iter().all(|b| b.contains("10")), "{blocks:?}");
    // The same page at phone width.
    c.set_window_size(390, 844).await.expect("resize");
    tokio::time::sleep(Duration::from_millis(300)).await;
    shot(&c, "search-phone").await;
    c.set_window_size(1280, 1100).await.expect("resize");

    // Sort by latency: the column is pressed and ascending.
    click_live(&c, "button[data-sort='latency']").await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(
            "button[data-sort='latency'][aria-pressed='true']",
        ))
        .await
        .expect("pressed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let latencies: Vec<f64> = texts(&c, "#leaderboard tbody td:nth-child(6)")
        .await
        .iter()
        .filter_map(|t| t.trim_end_matches(" ms").parse().ok())
        .collect();
    assert!(latencies.len() >= 3, "{latencies:?}");
    assert!(
        latencies.windows(2).all(|w| w[0] <= w[1]),
        "ascending: {latencies:?}"
    );
    let search_url = c.current_url().await.expect("url");

    // A trial: diagram and curves.
    // (The live table may re-render under a click: follow the link's address.)
    let href = attribute(&c, "#leaderboard tbody a", "href")
        .await
        .expect("a trial link");
    assert!(href.starts_with("/trials/"), "{href}");
    c.goto(&format!("{root}{href}")).await.expect("goto trial");
    ready(&c).await;
    c.find(Locator::Css("#diagram svg rect"))
        .await
        .expect("architecture diagram");
    c.find(Locator::Css("#curves svg polyline"))
        .await
        .expect("learning curves");
    shot(&c, "trial").await;

    // Cancel, confirming the dialog.
    c.goto(search_url.as_str()).await.expect("back");
    ready(&c).await;
    click_live(&c, "#cancel").await;
    c.accept_alert().await.expect("confirm");
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".badge.cancelled"))
        .await
        .expect("cancelled");

    // The other pages.
    c.goto(&format!("{root}/")).await.expect("goto");
    ready(&c).await;
    let names = texts(&c, "#searches tbody td:nth-child(2)").await;
    assert_eq!(names, ["browser search"]);
    shot(&c, "searches").await;
    c.goto(&format!("{root}/zoo")).await.expect("goto");
    ready(&c).await;
    c.find(Locator::Css("#zoo tbody tr:nth-child(5) button"))
        .await
        .expect("a diagram button")
        .click()
        .await
        .expect("click");
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".diagram svg rect"))
        .await
        .expect("zoo diagram");
    shot(&c, "zoo").await;
    c.goto(&format!("{root}/workers")).await.expect("goto");
    ready(&c).await;
    assert_eq!(texts(&c, "#workers tbody tr").await.len(), 1);
    shot(&c, "workers").await;
    c.close().await.expect("close");
}

/// A multi-fidelity search in the browser: rungs and stopped-early trials
/// on the leaderboard and the scatter, then "Train final models" on the
/// finished search puts its tested final model at the top of the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_fidelity_search_and_its_final_model_in_a_real_browser() {
    let live = common::serve(&testing::fresh_sqlite_url(), Auth::open(), 1).await;
    let root = live.base.trim_end_matches("/api/v1").to_owned();
    let spec: search::SearchSpec = serde_json::from_value(serde_json::json!({
        "name": "asha in the browser", "dataset": "mnist", "space": "micro", "strategy": {"kind": "random"},
        "objective": {"latency": {"target_ms": 100, "mode": "hard"}},
        "scheduler": {"kind": "asha", "min_epochs": 1, "max_epochs": 3, "eta": 3},
        "budget": {"max_trials": 5, "parallelism": 1, "max_train_samples": 512}, "seed": 4
    }))
    .expect("spec");
    let id = live.store.create_search(&spec).await.expect("create");
    let deadline = Instant::now() + Duration::from_secs(240);
    while live.store.search(id).await.expect("search").status != store::SearchStatus::Finished {
        assert!(Instant::now() < deadline, "the search did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A model stopped early is an under-trained proxy: not exportable.
    let stopped = live
        .store
        .trials(id)
        .await
        .expect("trials")
        .into_iter()
        .find(|t| t.state == store::TrialState::Stopped)
        .expect("a trial stopped early");
    let (status, body) =
        common::get(format!("{}/trials/{}/model.onnx", live.base, stopped.id)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_exportable")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is stopped")),
        "{body}"
    );
    let (_driver, c) = browser().await;
    c.goto(&format!("{root}/searches/{id}"))
        .await
        .expect("goto");
    ready(&c).await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#leaderboard tbody tr:nth-child(5)"))
        .await
        .expect("five ranked trials");
    let rungs = texts(&c, "#leaderboard tbody td:nth-child(11)").await;
    assert!(rungs.iter().all(|r| r == "1/2" || r == "2/2"), "{rungs:?}");
    assert!(rungs.iter().any(|r| r == "2/2"), "one went on: {rungs:?}");
    let states = texts(&c, "#leaderboard tbody td:nth-child(12)").await;
    assert!(
        states.iter().any(|s| s == "stopped early"),
        "some trial stopped early: {states:?}"
    );
    assert!(texts(&c, "#scheduler").await[0].contains("rungs at 1, 3 epochs"));
    // A latency target gives the hypervolume a reference point (twice it).
    assert!(texts(&c, "#objective").await[0].contains("accuracy × (latency / 100 ms)^w, hard"));
    // Sorted by non-dominated rank: the front (1) first.
    click_live(&c, "button[data-sort='rank']").await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(
            "#leaderboard tbody td:nth-child(2):not(:empty)",
        ))
        .await
        .expect("fronts shown");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fronts = texts(&c, "#leaderboard tbody td:nth-child(2)").await;
    assert_eq!(fronts.first().map(String::as_str), Some("1"), "{fronts:?}");
    assert!(fronts.windows(2).all(|w| w[0] <= w[1]), "{fronts:?}");
    c.find(Locator::Css("#hypervolume-chart svg polyline"))
        .await
        .expect("the hypervolume over compute");
    c.find(Locator::Css("#scatter svg circle[data-rung='1']"))
        .await
        .expect("a second-rung point on the scatter");
    click_live(&c, "#train-final").await;
    c.wait()
        .at_most(Duration::from_secs(180))
        .for_element(Locator::Css("#final-table tbody td .badge.succeeded"))
        .await
        .expect("the final model trains and appears");
    // Every final model tested: the tested front is drawn over the scatter.
    let deadline = Instant::now() + Duration::from_secs(300);
    while live
        .store
        .final_models(id)
        .await
        .expect("finals")
        .iter()
        .any(|m| m.state != store::TrialState::Succeeded)
    {
        assert!(Instant::now() < deadline, "the final models did not finish");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#scatter svg path.point.tested.front"))
        .await
        .expect("a tested final model on the front");
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#final-table tbody td.front-mark"))
        .await
        .expect("the tested-front column");
    let marks = texts(&c, "#final-table tbody td.front-mark").await;
    assert!(marks.iter().any(|m| m == "on the front"), "{marks:?}");
    assert!(texts(&c, "#hypervolume").await[0].contains("tested"));
    let row = texts(&c, "#final-table tbody td").await;
    assert!(row[2].ends_with('%'), "test accuracy shown: {row:?}");
    assert!(row[1].starts_with('#'), "its source trial: {row:?}");
    let onnx = texts(&c, "#final-table tbody a[href$='/model.onnx']").await;
    assert!(
        !onnx.is_empty() && onnx.iter().all(|t| t == "ONNX"),
        "the final model downloads as ONNX: {onnx:?}"
    );
    shot(&c, "search-final").await;
    c.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_uploaded_from_the_datasets_page_is_offered_to_new_searches() {
    let live = common::serve(&testing::fresh_sqlite_url(), Auth::open(), 0).await;
    let root = live.base.trim_end_matches("/api/v1").to_owned();
    let (_driver, c) = browser().await;
    // A Kaggle-style CSV: three classes of 4x4 images, no test split.
    let csv = std::env::temp_dir().join(format!("nas-browser-{}.csv", std::process::id()));
    let mut text = String::from("label");
    for p in 0..16 {
        text.push_str(&format!(",p{p}"));
    }
    text.push('\n');
    for i in 0..30 {
        let shade = (i % 3) * 100;
        text.push_str(&format!("{}{}\n", i % 3, format!(",{shade}").repeat(16)));
    }
    std::fs::write(&csv, text).expect("csv");

    c.goto(&format!("{root}/datasets")).await.expect("goto");
    ready(&c).await;
    assert!(texts(&c, "#datasets tbody td:first-child")
        .await
        .contains(&"fashion-mnist".to_owned()));
    // A name that is not one is refused, named beside the form.
    c.find(Locator::Id("u-file"))
        .await
        .expect("file input")
        .send_keys(&csv.display().to_string())
        .await
        .expect("choose the file");
    set(&c, "u-name", "bad name!").await;
    set(&c, "u-test_fraction", "0.2").await;
    click_live(&c, "#upload").await;
    let status = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#upload-status.error"))
        .await
        .expect("an error")
        .text()
        .await
        .expect("text");
    assert!(status.contains("bad name!"), "{status}");
    set(&c, "u-name", "shades").await;
    click_live(&c, "#upload").await;
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#classes"))
        .await
        .expect("the stored dataset is shown");
    let status = texts(&c, "#upload-status").await.join("");
    assert!(
        status.contains("Stored shades: 24 training and 6 test images"),
        "{status}"
    );
    assert_eq!(
        texts(&c, "#classes tbody td:nth-child(2)").await,
        ["0", "1", "2"]
    );
    let loaded: bool = serde_json::from_value(
        c.execute(
            "const i = document.querySelector('.samples img'); return !!i && i.complete && i.naturalWidth > 0",
            vec![],
        )
        .await
        .expect("script"),
    )
    .expect("bool");
    assert!(loaded, "the sample grid loads");
    shot(&c, "datasets").await;
    assert!(live.store.dataset("shades").await.is_ok());
    // Offered on the new-search form, preselected from "Search on it".
    click_live(&c, "a[href='/searches/new?dataset=shades']").await;
    ready(&c).await;
    let chosen = c
        .execute("return document.getElementById('f-dataset').value", vec![])
        .await
        .expect("script");
    assert_eq!(chosen, "shades");
    assert!(texts(&c, "#f-dataset optgroup[label='Uploaded'] option")
        .await
        .iter()
        .any(|o| o.starts_with("shades (4×4×1, 3 classes)")));
    let _ = std::fs::remove_file(&csv);
}

//! The HTTP client commands: `nas submit`, `searches`, `show`, `leaderboard`,
//! `cancel` and `export`, talking to `nas up` or `nas serve`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::de::DeserializeOwned;

use super::arch::read_input;
use crate::api::dto::{ErrorBody, Leaderboard, SearchDetail, SearchList, SearchView, TrialList};
use crate::cli::{
    CancelArgs, ExportArgs, ExportFormat, FinalArgs, LeaderboardArgs, OutputFormat, SearchesArgs,
    ServerArgs, ShowArgs, SubmitArgs,
};
use crate::table::{thousands, Align, Table};

/// A blocking client of one server.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client of `args.server`.
    pub fn new(args: &ServerArgs) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Self {
            base: args.server.trim_end_matches('/').to_owned(),
            token: args.token.clone().filter(|t| !t.is_empty()),
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// Sends a request; returns the body of a 2xx answer, else the API's error.
    fn send(&self, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<Vec<u8>> {
        let url = self.url(path);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let get = || {
            let mut request = self.agent.get(&url);
            if let Some(auth) = &auth {
                request = request.header("authorization", auth);
            }
            request.call()
        };
        let result = match (method, body) {
            // A pooled connection the server already closed fails at once:
            // a read is safe to send again.
            ("GET", _) => get().or_else(|e| match e {
                ureq::Error::Io(_) | ureq::Error::ConnectionFailed => {
                    std::thread::sleep(Duration::from_millis(200));
                    get()
                }
                other => Err(other),
            }),
            (_, body) => {
                let mut request = self
                    .agent
                    .post(&url)
                    .header("content-type", "application/json");
                if let Some(auth) = &auth {
                    request = request.header("authorization", auth);
                }
                request.send(body.unwrap_or("").as_bytes())
            }
        };
        self.answer(method, &url, result)
    }

    /// The body of a 2xx answer to `method url`, else the API's error.
    fn answer(
        &self,
        method: &str,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Vec<u8>> {
        let response = result.map_err(|e| {
            anyhow!(
                "cannot reach the server at {}: {e} (is `nas up` or `nas serve` running? see --server)",
                self.base
            )
        })?;
        let status = response.status();
        let bytes = response
            .into_body()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .with_context(|| format!("reading the answer to {method} {url}"))?;
        if status.is_success() {
            return Ok(bytes);
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => {
                let field = e.error.field.map(|f| format!(" [{f}]")).unwrap_or_default();
                bail!(
                    "{} {}{field}: {}",
                    status.as_u16(),
                    e.error.code,
                    e.error.message
                )
            }
            Err(_) => bail!("{method} {url}: HTTP {}", status.as_u16()),
        }
    }

    /// `POST path` with `body` streamed as `application/octet-stream`
    /// (no timeout: a large upload takes as long as it takes).
    pub fn post_stream(
        &self,
        path: &str,
        body: impl std::io::Read + Send + 'static,
    ) -> anyhow::Result<Vec<u8>> {
        let url = self.url(path);
        let mut request = self
            .agent
            .post(&url)
            .config()
            .timeout_global(None)
            .build()
            .header("content-type", "application/octet-stream");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let result = request.send(ureq::SendBody::from_owned_reader(body));
        self.answer("POST", &url, result)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> anyhow::Result<()> {
        let url = self.url(path);
        let mut request = self.agent.delete(&url);
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        self.answer("DELETE", &url, request.call()).map(drop)
    }

    /// `GET path` as JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let bytes = self.send("GET", path, None)?;
        serde_json::from_slice(&bytes).with_context(|| format!("unexpected answer from GET {path}"))
    }

    /// `POST path` with a JSON body, answer as JSON.
    pub fn post<T: DeserializeOwned>(&self, path: &str, body: Option<&str>) -> anyhow::Result<T> {
        let bytes = self.send("POST", path, body)?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("unexpected answer from POST {path}"))
    }

    /// `GET path` as raw bytes.
    pub fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        self.send("GET", path, None)
    }
}

fn percent(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.2}%", v * 100.0))
}

/// The leaderboard as an aligned table.
pub fn leaderboard_table(entries: &[store::LeaderboardEntry]) -> String {
    let by_front = entries.iter().any(|e| e.front.is_some());
    let mut columns = vec![("rank", Align::Right)];
    if by_front {
        columns.push(("front", Align::Right));
    }
    columns.extend([
        ("trial", Align::Right),
        ("index", Align::Right),
        ("reward", Align::Right),
        ("val acc", Align::Right),
        ("latency p50", Align::Right),
        ("params", Align::Right),
        ("MACs", Align::Right),
        ("epochs", Align::Right),
        ("rung", Align::Right),
        ("state", Align::Left),
    ]);
    let mut table = Table::new(&columns);
    for e in entries {
        let mut row = vec![e.rank.to_string()];
        if by_front {
            row.push(e.front.map_or("-".into(), |f| (f + 1).to_string()));
        }
        row.extend([
            e.trial_id.to_string(),
            e.index.to_string(),
            format!("{:.4}", e.reward),
            percent(e.accuracy),
            e.latency_ms.map_or("-".into(), |v| format!("{v:.3} ms")),
            e.params.map_or("-".into(), |v| thousands(v.max(0) as u64)),
            e.macs.map_or("-".into(), |v| thousands(v.max(0) as u64)),
            e.epochs.to_string(),
            (e.rung + 1).to_string(),
            e.state.as_str().to_owned(),
        ]);
        table.row(row);
    }
    table.render()
}

/// A search's final models as an aligned table.
pub fn final_table(models: &[store::TrialRow]) -> String {
    let mut table = Table::new(&[
        ("trial", Align::Right),
        ("from", Align::Right),
        ("state", Align::Left),
        ("test acc", Align::Right),
        ("latency p50", Align::Right),
        ("params", Align::Right),
        ("MACs", Align::Right),
        ("epochs", Align::Right),
        ("reward", Align::Right),
    ]);
    for m in models {
        let result = m.result.as_ref();
        table.row(vec![
            m.id.to_string(),
            match &m.lineage.baseline {
                Some(zoo) => format!("zoo: {zoo}"),
                None => m.source_index.map_or("-".into(), |i| format!("#{i}")),
            },
            m.state.as_str().to_owned(),
            percent(m.test_accuracy),
            result.map_or("-".into(), |r| format!("{:.3} ms", r.latency_ms.p50)),
            result.map_or("-".into(), |r| thousands(r.params)),
            result.map_or("-".into(), |r| thousands(r.macs)),
            result
                .and_then(|r| r.epochs)
                .map_or("-".into(), |e| e.to_string()),
            m.reward.map_or("-".into(), |r| format!("{r:.4}")),
        ]);
    }
    table.render()
}

/// `nas submit`: prints the new search's id; with `--wait`, follows it.
pub fn submit(args: &SubmitArgs) -> anyhow::Result<String> {
    let spec = read_input(&args.spec)?;
    let client = Client::new(&args.server);
    let search: SearchView = client.post("/searches", Some(&spec))?;
    if !args.wait {
        return Ok(format!("{}\n", search.id));
    }
    println!("{}", search.id);
    let detail = follow(&client, search.id)?;
    let board: Leaderboard =
        client.get(&format!("/searches/{}/leaderboard?limit=10", search.id))?;
    Ok(format!(
        "search {} {}: {} of {} trials ended\n{}{}",
        detail.search.id,
        status_name(&detail),
        detail.progress.trials_ended,
        detail.progress.max_trials,
        leaderboard_table(&board.entries),
        finals_text(&detail)
    ))
}

/// The final models' table under its heading (empty without any).
fn finals_text(detail: &SearchDetail) -> String {
    if detail.final_models.is_empty() {
        return String::new();
    }
    format!(
        "final models (trained on training + validation data, tested once):\n{}\n",
        final_table(&detail.final_models)
    )
}

/// The search's status, with the reason when it failed.
fn status_name(detail: &SearchDetail) -> String {
    let status = detail.search.status.as_str();
    match (&detail.search.error, &detail.waiting_for) {
        (Some(reason), _) => format!("{status} ({reason})"),
        (None, Some(waiting)) => format!("{status} ({waiting})"),
        (None, None) => status.to_owned(),
    }
}

/// Polls a search until it ends, drawing a progress bar on stderr.
fn follow(client: &Client, id: i64) -> anyhow::Result<SearchDetail> {
    let terminal = std::io::stderr().is_terminal();
    let mut last_line = String::new();
    loop {
        let detail: SearchDetail = client.get(&format!("/searches/{id}"))?;
        let p = &detail.progress;
        let width = 30usize;
        let filled = ((p.fraction * width as f64).round() as usize).min(width);
        let running = detail.trial_counts.get("running").copied().unwrap_or(0);
        let best = detail.best_trial.as_ref().map_or("-".into(), |b| {
            format!("{:.4} (trial {})", b.reward, b.trial_id)
        });
        let waiting = detail
            .waiting_for
            .as_ref()
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        let line = format!(
            "[{}{}] {}/{} trials, {running} running, best reward {best}{waiting}",
            "#".repeat(filled),
            ".".repeat(width - filled),
            p.trials_ended,
            p.max_trials
        );
        let mut err = std::io::stderr();
        if terminal {
            let _ = write!(err, "\r{line}\x1b[K");
        } else if line != last_line {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        last_line = line;
        if detail.search.status != store::SearchStatus::Running {
            if terminal {
                let _ = writeln!(err);
            }
            return Ok(detail);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `nas searches`.
pub fn searches(args: &SearchesArgs) -> anyhow::Result<String> {
    let client = Client::new(&args.server);
    let mut path = format!("/searches?limit={}", args.limit.clamp(1, 500));
    if let Some(status) = &args.status {
        path.push_str(&format!("&status={status}"));
    }
    let list: SearchList = client.get(&path)?;
    if args.json {
        return super::json_text(&list);
    }
    let mut table = Table::new(&[
        ("id", Align::Right),
        ("name", Align::Left),
        ("status", Align::Left),
        ("dataset", Align::Left),
        ("trials", Align::Right),
    ]);
    for summary in &list.searches {
        let s = &summary.search;
        table.row(vec![
            s.id.to_string(),
            s.name.clone(),
            serde_json::to_value(s.status)?
                .as_str()
                .unwrap_or("")
                .to_owned(),
            s.spec.dataset.clone(),
            format!("{}/{}", s.trials_proposed, s.spec.budget.max_trials),
        ]);
    }
    Ok(table.render())
}

/// `nas show`.
pub fn show(args: &ShowArgs) -> anyhow::Result<String> {
    let client = Client::new(&args.server);
    let detail: SearchDetail = client.get(&format!("/searches/{}", args.id))?;
    if args.json {
        return super::json_text(&detail);
    }
    let board: Leaderboard = client.get(&format!("/searches/{}/leaderboard?limit=5", args.id))?;
    Ok(format!(
        "{}{}",
        finals_text(&detail),
        search_text(&detail, &board)
    ))
}

/// The search part of `nas show`.
fn search_text(detail: &SearchDetail, board: &Leaderboard) -> String {
    let s = &detail.search;
    format!(
        "search {} ({}): {}\ndataset {}, {} trials, {} of {} ended ({:.0}%)\ntrials: {}\n{}\nbest trials:\n{}",
        s.id,
        s.name,
        status_name(detail),
        s.spec.dataset,
        s.trials_proposed,
        detail.progress.trials_ended,
        detail.progress.max_trials,
        detail.progress.fraction * 100.0,
        detail
            .trial_counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        detail
            .hypervolume
            .as_ref()
            .map_or(String::new(), hypervolume_line),
        leaderboard_table(&board.entries)
    )
}

/// `hypervolume: validated 0.612, tested 0.587 (reference: accuracy 0%, latency 2 ms)`.
fn hypervolume_line(h: &store::Hypervolume) -> String {
    let reference: Vec<String> = h
        .metrics
        .iter()
        .zip(&h.reference)
        .map(|(m, &v)| match m {
            search::Metric::Accuracy => format!("accuracy {:.1}%", v * 100.0),
            search::Metric::Latency => format!("latency {v} ms"),
            other => format!("{} {}", other.as_str(), thousands(v.max(0.0) as u64)),
        })
        .collect();
    format!(
        "hypervolume: validated {:.4}, tested {} (reference: {})\n",
        h.validated,
        h.tested.map_or("-".into(), |t| format!("{t:.4}")),
        reference.join(", ")
    )
}

/// `nas leaderboard`: the top entries (fetched page by page); with
/// `--final`, the final models.
pub fn leaderboard(args: &LeaderboardArgs) -> anyhow::Result<String> {
    let client = Client::new(&args.server);
    if args.final_models {
        let list: TrialList = client.get(&format!("/searches/{}/final", args.id))?;
        return match args.format {
            OutputFormat::Json => super::json_text(&list),
            _ if list.trials.is_empty() => Ok(format!(
                "search {} has no final models (see `nas final {}`)\n",
                args.id, args.id
            )),
            _ => Ok(final_table(&list.trials)),
        };
    }
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    let mut board: Option<Leaderboard> = None;
    while entries.len() < args.top {
        let limit = (args.top - entries.len()).min(1000);
        let mut path = format!(
            "/searches/{}/leaderboard?sort={}&limit={limit}",
            args.id, args.sort
        );
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: Leaderboard = client.get(&path)?;
        entries.extend(page.entries.iter().cloned());
        cursor = page.next_cursor.clone();
        board = Some(page);
        if cursor.is_none() {
            break;
        }
    }
    let Some(mut board) = board else {
        return Ok(String::new());
    };
    board.entries = entries;
    board.next_cursor = cursor;
    match args.format {
        OutputFormat::Table => Ok(leaderboard_table(&board.entries)),
        OutputFormat::Json => super::json_text(&board),
        OutputFormat::Csv => Ok(crate::api::leaderboard_csv(&board.entries)),
    }
}

/// `nas final`: queues the final training of a finished search.
pub fn request_final(args: &FinalArgs) -> anyhow::Result<String> {
    let client = Client::new(&args.server);
    let settings = search::FinalTraining {
        top_k: args.top_k,
        epochs: args.epochs,
        training: None,
        max_seconds: args.max_seconds,
    };
    let body = serde_json::to_string(&settings)?;
    let queued: serde_json::Value =
        client.post(&format!("/searches/{}/final", args.id), Some(&body))?;
    Ok(format!(
        "search {}: {} final model(s) queued ({} epochs each); see `nas leaderboard {} --final`\n",
        args.id, queued["queued"], args.epochs, args.id
    ))
}

/// `nas cancel`.
pub fn cancel(args: &CancelArgs) -> anyhow::Result<String> {
    let client = Client::new(&args.server);
    let search: SearchView = client.post(&format!("/searches/{}/cancel", args.id), None)?;
    Ok(format!("search {} cancelled\n", search.id))
}

/// `nas export`: the architecture JSON and the weights, or the ONNX model,
/// into `--out`.
pub fn export(args: &ExportArgs) -> anyhow::Result<String> {
    let client = Client::new(&args.server);
    let id = args.trial;
    if args.format == ExportFormat::Onnx {
        let model = client.get_bytes(&format!("/trials/{id}/model.onnx"))?;
        let path = if args.out.extension().is_some_and(|e| e == "onnx") {
            args.out.clone()
        } else {
            args.out.join(format!("trial-{id}.onnx"))
        };
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder)
                .with_context(|| format!("creating {}", folder.display()))?;
        }
        std::fs::write(&path, &model).with_context(|| format!("writing {}", path.display()))?;
        return Ok(format!(
            "{}\nONNX model (opset 17), {} bytes; its metadata `nas.input` says what the input takes\n",
            path.display(),
            model.len()
        ));
    }
    let architecture = client.get_bytes(&format!("/trials/{id}/architecture"))?;
    let weights = client.get_bytes(&format!("/trials/{id}/weights"))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let arch_path = args.out.join(format!("trial-{id}.json"));
    let weights_path = args.out.join(format!("trial-{id}.safetensors"));
    std::fs::write(&arch_path, &architecture)
        .with_context(|| format!("writing {}", arch_path.display()))?;
    std::fs::write(&weights_path, &weights)
        .with_context(|| format!("writing {}", weights_path.display()))?;
    Ok(format!(
        "{}\n{}\nload it with: nas train --arch {} (weights: {} bytes)\n",
        arch_path.display(),
        weights_path.display(),
        arch_path.display(),
        weights.len()
    ))
}

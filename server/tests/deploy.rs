//! The Docker deployment, checked without a Docker engine: the compose
//! services run real `nas` subcommands with flags the binary accepts, server
//! and workers share one database, the published port is the one the server
//! binds, the Dockerfile has the shape docs/deploying.md promises; then the compose
//! services' exact command lines and environments run natively (a server and
//! two workers on PostgreSQL) through a search.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use server::cli::{Cli, Command as NasCommand};
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `${VAR:-default}`, `${VAR:?message}` and `${VAR}` resolved from `vars`.
fn interpolate(text: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        let expr = &rest[start + 2..end];
        let (name, fallback) = match expr.find([':']) {
            Some(i) => (&expr[..i], Some(&expr[i + 1..])),
            None => (expr, None),
        };
        let value = match (vars.get(name), fallback) {
            (Some(v), _) if !v.is_empty() => (*v).to_owned(),
            (_, Some(f)) if f.starts_with('-') => f[1..].to_owned(),
            (_, Some(f)) if f.starts_with('?') => panic!("{name} is required: {}", &f[1..]),
            _ => String::new(),
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

struct Service {
    command: Vec<String>,
    environment: BTreeMap<String, String>,
    ports: Vec<String>,
    volumes: Vec<String>,
}

fn service(doc: &Yaml, name: &str, vars: &BTreeMap<&str, &str>) -> Service {
    let s = &doc["services"][name];
    assert!(!s.is_badvalue(), "service {name} missing");
    let strings = |y: &Yaml| -> Vec<String> {
        y.as_vec()
            .map(|v| {
                v.iter()
                    .filter_map(|x| x.as_str().map(|t| interpolate(t, vars)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let environment = s["environment"]
        .as_hash()
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), interpolate(v.as_str()?, vars))))
                .collect()
        })
        .unwrap_or_default();
    Service {
        command: strings(&s["command"]),
        environment,
        ports: strings(&s["ports"]),
        volumes: strings(&s["volumes"]),
    }
}

fn compose(vars: &BTreeMap<&str, &str>) -> (Service, Service) {
    let text =
        std::fs::read_to_string(repo().join("docker-compose.yml")).expect("docker-compose.yml");
    let docs = YamlLoader::load_from_str(&text).expect("valid YAML");
    let doc = &docs[0];
    (service(doc, "server", vars), service(doc, "worker", vars))
}

fn vars() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([("NAS_API_TOKEN", "deploy-test-token")])
}

#[test]
fn compose_services_run_real_subcommands_on_one_database_and_port() {
    let (server, worker) = compose(&vars());
    let parse = |command: &[String]| {
        Cli::try_parse_from(std::iter::once("nas".to_owned()).chain(command.iter().cloned()))
            .unwrap_or_else(|e| panic!("`nas {}` is refused: {e}", command.join(" ")))
    };
    assert!(matches!(
        parse(&server.command).command,
        Some(NasCommand::Serve(_))
    ));
    assert!(matches!(
        parse(&worker.command).command,
        Some(NasCommand::Worker(_))
    ));
    let url = |s: &Service| s.environment.get("NAS_DATABASE_URL").cloned();
    assert!(url(&server).is_some_and(|u| u.starts_with("postgres://")));
    assert_eq!(
        url(&server),
        url(&worker),
        "server and workers share the database"
    );
    // The worker replicas of a host share one latency lock on a volume, so
    // none trains while another measures.
    let lock = worker
        .environment
        .get("NAS_LATENCY_LOCK")
        .expect("NAS_LATENCY_LOCK");
    let lock_dir = std::path::Path::new(lock).parent().expect("lock folder");
    assert!(
        worker
            .volumes
            .iter()
            .any(|v| v.split(':').nth(1).map(std::path::Path::new) == Some(lock_dir)),
        "the latency lock {lock} is not on a shared volume: {:?}",
        worker.volumes
    );
    let bind = server.environment.get("NAS_BIND").expect("NAS_BIND");
    let bind_port = bind.rsplit(':').next().expect("port");
    assert!(
        server
            .ports
            .iter()
            .any(|p| p.rsplit(':').next() == Some(bind_port)),
        "published {:?} vs bind {bind}",
        server.ports
    );
    assert!(
        server
            .environment
            .get("NAS_API_TOKEN")
            .is_some_and(|t| !t.is_empty()),
        "a public bind needs the token"
    );

    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")) >= 2,
        "multi-stage"
    );
    assert!(dockerfile.contains("ENTRYPOINT [\"nas\"]"));
    assert!(
        dockerfile.contains("\nUSER nas\n"),
        "runs as a non-root user"
    );
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("/api/v1/healthz"));
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(command: &[String], env: &BTreeMap<String, String>, log: &str) -> Proc {
    let log = std::fs::File::create(
        std::env::temp_dir().join(format!("nas-deploy-{log}-{}.log", std::process::id())),
    )
    .expect("log");
    Proc(
        Command::new(env!("CARGO_BIN_EXE_nas"))
            .args(command)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starts nas"),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_command_lines_run_a_search_natively() {
    let (server, worker) = compose(&vars());
    let database = store::testing::fresh_postgres_url()
        .await
        .expect("postgres");
    let port = free_port();
    let datasets = repo().join("../shared/datasets").display().to_string();
    // The compose environment, with only the host-specific values swapped.
    let mut server_env = server.environment.clone();
    server_env.insert("NAS_DATABASE_URL".into(), database.clone());
    server_env.insert("NAS_BIND".into(), format!("127.0.0.1:{port}"));
    let mut worker_env = worker.environment.clone();
    worker_env.insert("NAS_DATABASE_URL".into(), database.clone());
    worker_env.insert("NAS_DATA_DIR".into(), datasets);
    worker_env.insert("NAS_WORKER_THREADS".into(), "1".into());
    let mut procs = vec![start(&server.command, &server_env, "server")];
    for k in 0..2 {
        procs.push(start(&worker.command, &worker_env, &format!("worker{k}")));
    }
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent
        .get(&format!("{base}/readyz"))
        .call()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }
    let spec = r#"{"name": "compose", "dataset": "mnist", "strategy": {"kind": "random"},
                   "budget": {"max_trials": 3, "parallelism": 2, "max_train_samples": 1024}}"#;
    let refused = agent
        .post(&format!("{base}/searches"))
        .header("content-type", "application/json")
        .send(spec)
        .expect("post");
    assert_eq!(
        refused.status().as_u16(),
        401,
        "the compose server requires its token"
    );
    let mut created = agent
        .post(&format!("{base}/searches"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer deploy-test-token")
        .send(spec)
        .expect("post");
    assert_eq!(created.status().as_u16(), 201);
    let created: serde_json::Value =
        serde_json::from_str(&created.body_mut().read_to_string().expect("body")).expect("json");
    let id = created["id"].as_i64().expect("id");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let mut r = agent
            .get(&format!("{base}/searches/{id}"))
            .call()
            .expect("get");
        let detail: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json");
        if detail["status"] == "finished" {
            assert_eq!(detail["trial_counts"]["succeeded"], 3, "{detail}");
            break;
        }
        assert!(Instant::now() < deadline, "search not finished: {detail}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut r = agent
        .get(&format!("{base}/workers"))
        .call()
        .expect("workers");
    let workers: serde_json::Value =
        serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json");
    let alive = workers["workers"]
        .as_array()
        .map_or(0, |w| w.iter().filter(|w| w["alive"] == true).count());
    assert_eq!(alive, 2, "{workers}");
    for p in &mut procs {
        let status = Command::new("kill")
            .args(["-TERM", &p.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
    for p in &mut procs {
        let deadline = Instant::now() + Duration::from_secs(20);
        let exit = loop {
            if let Some(exit) = p.0.try_wait().expect("wait") {
                break exit;
            }
            assert!(Instant::now() < deadline, "a process ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(exit.success(), "{exit:?}");
    }
}

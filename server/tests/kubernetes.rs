//! The Kubernetes manifests (`deploy/kubernetes/base`), checked without a
//! cluster: the containers run real `nas` subcommands, the worker's
//! threads, memory and grace period agree with its resources, the KEDA
//! query is the store's own for the worker's labels and counts the queue
//! on a real PostgreSQL, probes name real endpoints, and pods run as the
//! image's unprivileged user on a read-only root filesystem. (`.ci/run`
//! also renders every overlay and validates it against the Kubernetes and
//! KEDA schemas.)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use server::cli::{Cli, Command as NasCommand};
use store::depth::{depth_sql, Depth};
use yaml_rust2::{Yaml, YamlLoader};

fn base() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/base")
}

/// Every object of the base's resources, by `Kind/name`.
fn objects() -> BTreeMap<String, Yaml> {
    let kustomization =
        std::fs::read_to_string(base().join("kustomization.yaml")).expect("kustomization.yaml");
    let kustomization = &YamlLoader::load_from_str(&kustomization).expect("YAML")[0];
    let mut objects = BTreeMap::new();
    for file in kustomization["resources"].as_vec().expect("resources") {
        let file = file.as_str().expect("a file name");
        let text = std::fs::read_to_string(base().join(file)).expect("resource file");
        for doc in YamlLoader::load_from_str(&text).expect("valid YAML") {
            let kind = doc["kind"].as_str().expect("kind").to_owned();
            let name = doc["metadata"]["name"].as_str().expect("name").to_owned();
            objects.insert(format!("{kind}/{name}"), doc);
        }
    }
    objects
}

/// The one container of a Deployment.
fn container<'a>(objects: &'a BTreeMap<String, Yaml>, deployment: &str) -> &'a Yaml {
    let containers = objects[&format!("Deployment/{deployment}")]["spec"]["template"]["spec"]
        ["containers"]
        .as_vec()
        .expect("containers");
    assert_eq!(containers.len(), 1, "{deployment}: one container");
    &containers[0]
}

/// A container's literal environment (values from secrets are left out).
fn env(container: &Yaml) -> BTreeMap<String, String> {
    container["env"]
        .as_vec()
        .expect("env")
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_owned(),
                e["value"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Names of the variables a container reads from secrets.
fn secret_env(container: &Yaml) -> Vec<String> {
    container["env"]
        .as_vec()
        .expect("env")
        .iter()
        .filter(|e| !e["valueFrom"]["secretKeyRef"].is_badvalue())
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect()
}

fn args(container: &Yaml) -> Vec<String> {
    container["args"]
        .as_vec()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("a string").to_owned())
        .collect()
}

fn parse(args: &[String]) -> Cli {
    Cli::try_parse_from(std::iter::once("nas".to_owned()).chain(args.iter().cloned()))
        .unwrap_or_else(|e| panic!("`nas {}` is refused: {e}", args.join(" ")))
}

/// `2`, `500m` as cores; `3Gi`, `512Mi` as MiB.
fn cores(q: &str) -> f64 {
    q.strip_suffix('m').map_or_else(
        || q.parse().expect("cores"),
        |m| m.parse::<f64>().expect("millicores") / 1e3,
    )
}

fn mib(q: &str) -> u64 {
    if let Some(g) = q.strip_suffix("Gi") {
        g.parse::<u64>().expect("GiB") * 1024
    } else {
        q.strip_suffix("Mi")
            .expect("Mi or Gi")
            .parse()
            .expect("MiB")
    }
}

#[test]
fn containers_run_real_subcommands_with_consistent_resources() {
    let objects = objects();
    let server = container(&objects, "nas-server");
    let worker = container(&objects, "nas-worker");
    assert!(matches!(
        parse(&args(server)).command,
        Some(NasCommand::Serve(_))
    ));
    assert!(matches!(
        parse(&args(worker)).command,
        Some(NasCommand::Worker(_))
    ));
    for c in [server, worker] {
        assert!(secret_env(c).contains(&"NAS_DATABASE_URL".to_owned()));
    }
    assert!(
        secret_env(server).contains(&"NAS_API_TOKEN".to_owned()),
        "a public bind needs the token"
    );
    let server_env = env(server);
    assert!(server_env["NAS_BIND"].starts_with("0.0.0.0:"));
    let port = server["ports"][0]["containerPort"].as_i64().expect("port");
    assert!(server_env["NAS_BIND"].ends_with(&format!(":{port}")));
    for (probe, path) in [
        ("startupProbe", "/api/v1/healthz"),
        ("readinessProbe", "/api/v1/readyz"),
        ("livenessProbe", "/api/v1/healthz"),
    ] {
        assert_eq!(
            server[probe]["httpGet"]["path"].as_str(),
            Some(path),
            "{probe}"
        );
    }
    // A long migration runs before the server listens: the startup probe
    // gives it minutes, not liveness's ~70 s.
    let startup = &server["startupProbe"];
    let allowed = startup["periodSeconds"].as_i64().expect("period")
        * startup["failureThreshold"].as_i64().expect("threshold");
    assert!(allowed >= 300, "{allowed} s for start-up");

    // The worker's flags, as its environment gives them, are accepted.
    let worker_env = env(worker);
    let mut flags = args(worker);
    for (var, flag) in [
        ("NAS_WORKER_CONCURRENCY", "--concurrency"),
        ("NAS_WORKER_THREADS", "--threads"),
        ("NAS_WORKER_LABELS", "--labels"),
        ("NAS_MAX_MEMORY_MIB", "--max-memory-mib"),
        ("NAS_LEASE_SECS", "--lease-secs"),
        ("NAS_DATA_DIR", "--data-dir"),
    ] {
        flags.extend([flag.to_owned(), worker_env[var].clone()]);
    }
    let Some(NasCommand::Worker(parsed)) = parse(&flags).command else {
        panic!("not a worker");
    };
    // Its probes reach the health endpoint it serves.
    let health_addr: std::net::SocketAddr = worker_env["NAS_WORKER_HEALTH_ADDR"]
        .parse()
        .expect("NAS_WORKER_HEALTH_ADDR");
    assert!(
        health_addr.ip().is_unspecified(),
        "reachable by the kubelet"
    );
    let health_port = worker["ports"]
        .as_vec()
        .expect("ports")
        .iter()
        .find(|p| p["containerPort"].as_i64() == Some(i64::from(health_addr.port())))
        .expect("the health port is declared");
    let port_name = health_port["name"].as_str().expect("named");
    for (probe, path) in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        let get = &worker[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "worker {probe}");
        assert_eq!(get["port"].as_str(), Some(port_name), "worker {probe}");
    }
    // KEDA owns the replica count: none in the manifest to fight its HPA.
    assert!(
        objects["Deployment/nas-worker"]["spec"]["replicas"].is_badvalue(),
        "no replicas on the Deployment KEDA scales"
    );
    // Threads x trials = the CPU request; the trials' memory fits under
    // the limit with room for datasets and the process.
    let resources = &worker["resources"];
    let cpu = cores(resources["requests"]["cpu"].as_str().expect("cpu request"));
    let threads = parsed.threads.expect("threads set") * parsed.concurrency;
    assert_eq!(threads as f64, cpu, "threads x concurrency vs CPU request");
    assert!(
        resources["limits"]["cpu"].is_badvalue(),
        "no CPU limit (throttling distorts latency)"
    );
    let limit = mib(resources["limits"]["memory"]
        .as_str()
        .expect("memory limit"));
    let trials = parsed.max_memory_mib.expect("max memory set");
    assert!(
        trials + 512 <= limit,
        "{trials} MiB of trials in a {limit} MiB container"
    );
    // Long enough to stop at a batch boundary and hand the trial back.
    let grace = objects["Deployment/nas-worker"]["spec"]["template"]["spec"]
        ["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("grace period");
    assert!(grace >= 60, "grace period {grace} s");
    // The dataset cache and the latency lock are writable volumes.
    let mounts: Vec<&str> = worker["volumeMounts"]
        .as_vec()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    assert!(mounts.contains(&worker_env["NAS_DATA_DIR"].as_str()));
    let lock = PathBuf::from(&worker_env["NAS_LATENCY_LOCK"]);
    assert!(mounts
        .iter()
        .any(|m| lock.parent() == Some(std::path::Path::new(m))));

    // Unprivileged, as the image's user, read-only root.
    let dockerfile =
        std::fs::read_to_string(base().join("../../../Dockerfile")).expect("Dockerfile");
    for name in ["nas-server", "nas-worker"] {
        let pod = &objects[&format!("Deployment/{name}")]["spec"]["template"]["spec"];
        let uid = pod["securityContext"]["runAsUser"]
            .as_i64()
            .expect("runAsUser");
        assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
        assert!(
            dockerfile.contains(&format!("--uid {uid} ")),
            "uid {uid} is the image's user"
        );
        let c = container(&objects, name);
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
            Some(true)
        );
        assert_eq!(
            c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
            Some(false)
        );
    }
}

/// A fresh PostgreSQL database holding one search with `queued` trials
/// queued.
async fn queue_with_trials(queued: u32) -> (String, store::Store) {
    let url = store::testing::fresh_postgres_url()
        .await
        .expect("postgres");
    let store = store::Store::connect(&url, store::QueueConfig::default())
        .await
        .expect("store");
    let spec: search::SearchSpec = serde_json::from_value(serde_json::json!({
        "name": "k", "dataset": "mnist",
        "budget": {"max_trials": queued * 3, "parallelism": queued}
    }))
    .expect("spec");
    store.create_search(&spec).await.expect("create");
    (url, store)
}

/// The ScaledObject's postgresql trigger metadata.
fn keda_trigger(objects: &BTreeMap<String, Yaml>) -> &Yaml {
    let scaled = &objects["ScaledObject/nas-worker"];
    assert_eq!(
        scaled["spec"]["scaleTargetRef"]["name"].as_str(),
        Some("nas-worker")
    );
    let trigger = &scaled["spec"]["triggers"][0];
    assert_eq!(trigger["type"].as_str(), Some("postgresql"));
    let auth = trigger["authenticationRef"]["name"].as_str().expect("auth");
    let secrets: Vec<&str> = objects[&format!("TriggerAuthentication/{auth}")]["spec"]
        ["secretTargetRef"]
        .as_vec()
        .expect("secretTargetRef")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(
        secrets,
        ["nas-keda"],
        "KEDA gets its read-only login, never the application's credential"
    );
    &trigger["metadata"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keda_query_is_the_stores_and_counts_the_queue() {
    let objects = objects();
    let worker_env = env(container(&objects, "nas-worker"));
    let labels: Vec<String> = worker_env["NAS_WORKER_LABELS"]
        .split(',')
        .map(str::to_owned)
        .collect();
    let metadata = keda_trigger(&objects);
    let query = metadata["query"].as_str().expect("query");
    assert_eq!(
        query,
        depth_sql(&labels, Depth::Demand).expect("sql"),
        "the ScaledObject's query is `nas queue depth --demand --sql --labels {}`",
        worker_env["NAS_WORKER_LABELS"]
    );
    assert_eq!(
        metadata["targetQueryValue"].as_str(),
        Some(worker_env["NAS_WORKER_CONCURRENCY"].as_str()),
        "one replica per NAS_WORKER_CONCURRENCY trials"
    );

    // The manifest's text, run as KEDA runs it, on a real queue.
    let (url, store) = queue_with_trials(3).await;
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let depth: i64 = sqlx::query_scalar(query)
        .fetch_one(&pool)
        .await
        .expect("the KEDA query runs");
    assert_eq!(depth, 3, "three trials queued");
    let worker = store::WorkerInfo {
        id: "k8s".into(),
        host: "test".into(),
        labels: labels.clone(),
        threads: 1,
        device: "test".into(),
        profile: None,
    };
    store.claim(&worker).await.expect("claim").expect("a trial");
    let depth: i64 = sqlx::query_scalar(query)
        .fetch_one(&pool)
        .await
        .expect("query");
    assert_eq!(depth, 3, "a claimed trial still needs its worker");

    // The CLI prints the same query, and the same count.
    let nas = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_nas"))
            .args([
                "queue",
                "depth",
                "--database-url",
                &url,
                "--labels",
                &worker_env["NAS_WORKER_LABELS"],
            ])
            .args(extra)
            .env_remove("NAS_WORKER_LABELS")
            .output()
            .expect("nas runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    };
    assert_eq!(nas(&["--demand", "--sql"]), query);
    assert_eq!(nas(&["--demand"]), "3");
    assert_eq!(nas(&[]), "2", "waiting only");
    pool.close().await;
    store.close().await;
}

/// The role of `deploy/kubernetes/keda-reader.sql`, on a real PostgreSQL:
/// it runs the manifest's KEDA query and can read nothing else nor write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kedas_role_may_read_the_demand_view_and_nothing_else() {
    let (url, store) = queue_with_trials(2).await;
    let owner = sqlx::PgPool::connect(&url).await.expect("connect");
    let sql = std::fs::read_to_string(base().join("../keda-reader.sql")).expect("keda-reader.sql");
    // Twice: it is safe to run again.
    for _ in 0..2 {
        sqlx::raw_sql(&sql)
            .execute(&owner)
            .await
            .expect("keda-reader.sql runs");
    }
    // The test server trusts local logins: connect as the role.
    let (server, database) = url.rsplit_once('/').expect("database name");
    let keda_url = server.replacen("postgres@", "nas_keda@", 1) + "/" + database;
    assert_ne!(keda_url, url, "logs in as nas_keda");
    let keda = sqlx::PgPool::connect(&keda_url)
        .await
        .expect("nas_keda logs in");
    let query = keda_trigger(&objects())["query"]
        .as_str()
        .expect("query")
        .to_owned();
    let depth: i64 = sqlx::query_scalar(&query)
        .fetch_one(&keda)
        .await
        .expect("the KEDA query runs as nas_keda");
    assert_eq!(depth, 2);
    for forbidden in [
        "SELECT COUNT(*) FROM trials",
        "SELECT COUNT(*) FROM searches",
        "SELECT COUNT(*) FROM artifacts",
        "UPDATE trials SET state = 'cancelled'",
        "DELETE FROM trial_metrics",
        "CREATE TABLE keda_was_here (x INT)",
    ] {
        let err = sqlx::query(forbidden)
            .execute(&keda)
            .await
            .expect_err(forbidden);
        assert!(
            err.to_string().contains("permission denied"),
            "{forbidden}: {err}"
        );
    }
    keda.close().await;
    owner.close().await;
    store.close().await;
}

/// Migration 0010 grants the view to a `nas_keda` role created before nas
/// first migrates its schema (the dev overlay's order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keda_role_made_before_nas_starts_gets_its_grant_from_the_migration() {
    let url = store::testing::fresh_postgres_url()
        .await
        .expect("postgres");
    let admin = sqlx::PgPool::connect(&url).await.expect("connect");
    sqlx::raw_sql(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nas_keda') \
         THEN CREATE ROLE nas_keda LOGIN NOINHERIT; END IF; END $$;",
    )
    .execute(&admin)
    .await
    .expect("role");
    let store = store::Store::connect(&url, store::QueueConfig::default())
        .await
        .expect("store migrates");
    let granted: bool =
        sqlx::query_scalar("SELECT has_table_privilege('nas_keda', 'nas_trial_demand', 'SELECT')")
            .fetch_one(&admin)
            .await
            .expect("privilege");
    assert!(granted);
    let trials: bool =
        sqlx::query_scalar("SELECT has_table_privilege('nas_keda', 'trials', 'SELECT')")
            .fetch_one(&admin)
            .await
            .expect("privilege");
    assert!(!trials);
    admin.close().await;
    store.close().await;
}

/// The prod overlay admits the API's port from the ingress controller only.
#[test]
fn in_prod_only_the_ingress_controller_reaches_the_server() {
    let text = std::fs::read_to_string(base().join("../overlays/prod/kustomization.yaml"))
        .expect("prod kustomization");
    let prod = &YamlLoader::load_from_str(&text).expect("YAML")[0];
    let ops: Vec<Yaml> = prod["patches"]
        .as_vec()
        .expect("patches")
        .iter()
        .filter(|p| {
            p["target"]["kind"].as_str() == Some("NetworkPolicy")
                && p["target"]["name"].as_str() == Some("nas-server")
        })
        .flat_map(|p| {
            YamlLoader::load_from_str(p["patch"].as_str().expect("patch text"))
                .expect("patch YAML")
                .remove(0)
                .into_vec()
                .expect("JSON patch ops")
        })
        .collect();
    let from = ops
        .iter()
        .find(|op| op["path"].as_str() == Some("/spec/ingress/0/from"))
        .expect("a patch sets who may reach the server");
    let peers = from["value"].as_vec().expect("peers");
    assert!(!peers.is_empty());
    for peer in peers {
        assert!(
            !peer["namespaceSelector"]["matchLabels"].is_badvalue()
                && !peer["podSelector"]["matchLabels"].is_badvalue(),
            "a named namespace and pods, not anyone: {peer:?}"
        );
    }
    // In the base, the rule it patches is the API port's.
    let policy = &objects()["NetworkPolicy/nas-server"];
    assert_eq!(
        policy["spec"]["ingress"][0]["ports"][0]["port"].as_i64(),
        Some(8080)
    );
}

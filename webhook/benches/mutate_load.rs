//! Load benchmark of `POST /mutate` over TLS keep-alive, against a do-nothing rustls + hyper
//! server on the same TLS stack that answers a fixed AdmissionReview, in the same run. A third
//! server, `framework`, runs the webhook's own server stack (`tessera_serve`, axum) with a
//! handler that answers the same fixed review, so the report splits the webhook's cost into
//! the stack's and the admission work's.
//!
//! Each server runs in its own child process (this binary, `serve <kind> …`), so its resident
//! memory is its own and client and server do not share a scheduler. By default the server's
//! runtime has one worker thread and the client runs on a current-thread runtime: on a small
//! machine (2 cores) client and server then get a core each instead of four busy threads
//! fighting over two, which measured the contention as much as the server.
//! `--server-threads N` and `--client-threads N` (N > 1: a multi-thread runtime) change that;
//! `--pin` runs the server on the last CPU and the client on the others (`taskset`, Linux).
//! The client replays the captured apiserver reviews in tests/fixtures/admission over
//! `--connections` keep-alive HTTP/1.1 connections: at full speed (each connection sends its
//! next request when the last answer arrived) and at fixed rates (requests start on a schedule;
//! when a connection is still waiting for an answer at its next scheduled time, latency is
//! measured from the schedule, so a server stall is not hidden).
//! The three servers start together and wait idle while another is measured; every load runs
//! `--rounds` times, the servers taking turns, and the report gives the median over rounds
//! (and the range of p99), because one run's p99 on a shared machine is mostly its noise.
//! The fixtures are stored pretty-printed; they are replayed compact, as the apiserver sends
//! them, unless `--pretty`.
//!
//! `cargo bench -p tessera-webhook --bench mutate_load -- [--seconds N] [--rounds N]
//! [--connections N] [--server-threads N] [--client-threads N] [--pin] [--pretty] [--log-level info]
//! [--loads full,500,2000,5000]`

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::registry::Registry;
use rustls::pki_types::{CertificateDer, ServerName};
use tessera_webhook::config::{AdmissionConfig, Config};
use tessera_webhook::{Webhook, profiles, tls};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        return serve_child(&args[2..]);
    }
    // `--decisions-only [--decision-rounds N] [--fixture NAME]`: the admission step alone, long
    // enough to profile (`perf record`), for every fixture or the one named.
    if args.iter().any(|a| a == "--decisions-only") {
        let rounds = flag(&args, "--decision-rounds").unwrap_or(2000).max(1) as u32;
        let only = text_flag(&args, "--fixture");
        let bodies = bodies(args.iter().any(|a| a == "--pretty"), only.as_deref())?;
        return decision_cost(&bodies, rounds);
    }
    let setup = Setup {
        secs: Duration::from_secs(flag(&args, "--seconds").unwrap_or(5)),
        connections: flag(&args, "--connections").unwrap_or(8) as usize,
        server_threads: flag(&args, "--server-threads").unwrap_or(1).max(1) as usize,
        client_threads: flag(&args, "--client-threads").unwrap_or(1).max(1) as usize,
        pin: args.iter().any(|a| a == "--pin"),
        rounds: flag(&args, "--rounds").unwrap_or(3).max(1) as usize,
        rates: rates(&args)?,
        pretty: args.iter().any(|a| a == "--pretty"),
        log_level: text_flag(&args, "--log-level").unwrap_or_else(|| "info".into()),
    };
    run(&setup)
}

/// How the load run is laid out on the machine.
struct Setup {
    secs: Duration,
    connections: usize,
    server_threads: usize,
    client_threads: usize,
    /// Server on the last CPU, client on the others.
    pin: bool,
    /// Rounds of every (server, load) run, interleaved so that a noisy stretch of the
    /// machine's time hits all servers alike; the report gives medians over rounds.
    rounds: usize,
    /// The loads run: `None` is full speed, `Some(r)` a fixed rate of r requests/s.
    rates: Vec<Option<u64>>,
    /// Replay the fixtures as stored (pretty-printed) instead of compact as on the wire.
    pretty: bool,
    /// The servers' log filter; `info` as in manifests/webhook/deployment.yaml.
    log_level: String,
}

/// `--loads full,2000`: the loads to run (default full, 500, 2000 and 5000 requests/s).
fn rates(args: &[String]) -> Result<Vec<Option<u64>>, BoxError> {
    let Some(i) = args.iter().position(|a| a == "--loads") else {
        return Ok(vec![None, Some(500), Some(2000), Some(5000)]);
    };
    let list = args
        .get(i + 1)
        .ok_or("--loads needs a list such as full,2000")?;
    list.split(',')
        .map(|l| match l {
            "full" => Ok(None),
            r => r
                .parse()
                .map(Some)
                .map_err(|_| format!("--loads: {r:?} is neither `full` nor requests/s").into()),
        })
        .collect()
}

fn flag(args: &[String], name: &str) -> Option<u64> {
    text_flag(args, name)?.parse().ok()
}

fn text_flag(args: &[String], name: &str) -> Option<String> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The review bodies replayed, round robin. The fixtures are stored pretty-printed, but the
/// apiserver sends compact JSON (Go's `encoding/json`), about half the bytes; they are replayed
/// compact unless `pretty`.
fn bodies(pretty: bool, only: Option<&str>) -> Result<Vec<Bytes>, BoxError> {
    let dir = root().join("tests/fixtures/admission");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let wanted = only.is_none_or(|o| name.as_deref() == Some(&format!("{o}.request.json")));
        if wanted && path.to_string_lossy().ends_with(".request.json") {
            let stored = std::fs::read(&path)?;
            if pretty {
                out.push(Bytes::from(stored));
                continue;
            }
            let body = compact(&stored);
            // Only whitespace between tokens may go; check the document is the same.
            let (a, b): (serde_json::Value, serde_json::Value) = (
                serde_json::from_slice(&stored)?,
                serde_json::from_slice(&body)?,
            );
            if a != b {
                return Err(format!("{}: compacting changed the review", path.display()).into());
            }
            out.push(Bytes::from(body));
        }
    }
    out.sort();
    Ok(out)
}

/// `json` without the whitespace between tokens (strings are copied as they are).
fn compact(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            out.push(b);
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if !b.is_ascii_whitespace() {
            in_string = b == b'"';
            out.push(b);
        }
    }
    out
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// ---------------------------------------------------------------- servers (child processes)

fn serve_child(args: &[String]) -> Result<(), BoxError> {
    let [kind, cert, key, threads, log_level] = args else {
        return Err("usage: serve webhook|framework|nothing CERT KEY THREADS LOG_LEVEL".into());
    };
    // The subscriber `tessera` installs (text lines on stderr, which the parent sends to a file),
    // at the level the Deployment runs with, so logging costs what it costs in the cluster.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(log_level)?)
        .with_writer(std::io::stderr)
        .try_init()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.parse()?)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?);
        std::io::stdout().flush()?;
        // Stop when the parent closes our stdin.
        let stop = async {
            let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new()))
                .await;
        };
        match kind.as_str() {
            "webhook" => serve_webhook(listener, cert.into(), key.into(), stop).await,
            "framework" => serve_framework(listener, cert.as_ref(), key.as_ref(), stop).await,
            _ => serve_nothing(listener, cert.as_ref(), key.as_ref(), stop).await,
        }
    })
}

async fn serve_webhook(
    listener: tokio::net::TcpListener,
    cert: PathBuf,
    key: PathBuf,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), BoxError> {
    let config = Config {
        listen: listener.local_addr()?,
        tls_cert: cert,
        tls_key: key,
        profiles: None,
        profiles_reload: Duration::from_secs(2),
        kubeconfig: None,
        admission: AdmissionConfig {
            cluster_domain: "cluster.local".into(),
            spiffe: None,
        },
        max_body_bytes: 4 << 20,
        request_timeout: Duration::from_secs(5),
        max_connections: 1024,
        idle_timeout: Duration::from_secs(30),
        tls_reload: Duration::from_secs(2),
        drain: Duration::from_secs(1),
        self_managed: None,
    };
    let mut registry = Registry::default();
    let webhook = Webhook::new(config, provider(), &mut registry)?;
    webhook.set_profiles(shipped_profiles()?);
    webhook.serve(listener, Arc::new(registry), stop).await;
    Ok(())
}

/// The webhook's own server stack (`tessera_serve` and an axum router) with a handler that
/// reads the body and answers the fixed review: the framework's cost without admission work.
async fn serve_framework(
    listener: tokio::net::TcpListener,
    cert: &Path,
    key: &Path,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), BoxError> {
    let config = server_tls(cert, key)?;
    let app = axum::Router::new().route(
        "/mutate",
        axum::routing::post(|body: Bytes| async move {
            std::hint::black_box(body);
            FIXED
        }),
    );
    let limits = tessera_serve::Limits::default();
    tessera_serve::serve_tls(listener, config, app, stop, Duration::from_secs(1), limits).await;
    Ok(())
}

/// The TLS config of the two fixed-answer servers, from the bench's certificate.
fn server_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, BoxError> {
    let loaded = tls::load(cert, key, &provider())?;
    Ok(tls::server_config(
        tls::CertStore::new(loaded.key),
        provider(),
    )?)
}

/// The answer of the two fixed-answer servers.
const FIXED: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"00000000-0000-0000-0000-000000000000","allowed":true}}"#;

/// Reads the body and answers a fixed allowed AdmissionReview: TLS, HTTP and body handling
/// with no admission work.
async fn serve_nothing(
    listener: tokio::net::TcpListener,
    cert: &Path,
    key: &Path,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), BoxError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(server_tls(cert, key)?);
    let fixed = Bytes::from_static(FIXED.as_bytes());
    tokio::pin!(stop);
    loop {
        let (tcp, _) = tokio::select! {
            a = listener.accept() => a?,
            () = &mut stop => return Ok(()),
        };
        tcp.set_nodelay(true)?;
        let (acceptor, fixed) = (acceptor.clone(), fixed.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let fixed = fixed.clone();
                    async move {
                        let _ = req.into_body().collect().await?;
                        Ok::<_, hyper::Error>(hyper::Response::new(Full::new(fixed)))
                    }
                });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts a server of `kind` on `server_cpu` when given, its log written to `log`.
    fn spawn(
        kind: &str,
        (cert, key, log): (&Path, &Path, &Path),
        setup: &Setup,
        server_cpu: Option<&str>,
    ) -> Result<Server, BoxError> {
        let exe = std::env::current_exe()?;
        let mut cmd = match server_cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpu]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut child = cmd
            .args(["serve", kind])
            .arg(cert)
            .arg(key)
            .arg(setup.server_threads.to_string())
            .arg(&setup.log_level)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        Ok(Server {
            addr: line.trim().parse()?,
            child,
        })
    }

    /// CPU time the server process has used so far, in nanoseconds: the sum over its threads
    /// of the scheduler's run time (`/proc/PID/task/*/schedstat`, Linux). Unlike latency it
    /// does not grow when other work on the machine delays the server, so it compares the
    /// servers' cost even on a busy machine.
    fn cpu_ns(&self) -> u64 {
        let dir = format!("/proc/{}/task", self.child.id());
        let Ok(tasks) = std::fs::read_dir(dir) else {
            return 0;
        };
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    /// Resident memory of the server process, MiB.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }
}

/// With `--pin`: the server's CPU and the client's CPU list, for `taskset -c`.
fn pinning(setup: &Setup) -> Option<(String, String)> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if !setup.pin || cpus < 2 {
        return None;
    }
    Some(((cpus - 1).to_string(), format!("0-{}", cpus - 2)))
}

/// Pins this process (the client) to `cpus` with `taskset -p`.
fn pin_self(cpus: &str) -> Result<(), BoxError> {
    let pid = std::process::id().to_string();
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("taskset -p -c {cpus} {pid} failed").into());
    }
    Ok(())
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- client

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Result<Sender, BoxError> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(send)
}

async fn send(s: &mut Sender, body: &Bytes) -> Result<(), BoxError> {
    s.ready().await?;
    let req = hyper::Request::post("/mutate?timeout=5s")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))?;
    let resp = s.send_request(req).await?;
    if resp.status() != 200 {
        return Err(format!("HTTP {}", resp.status()).into());
    }
    resp.into_body().collect().await?;
    Ok(())
}

/// One load run: `rate` requests/s in total (`None`: full speed) for `secs`.
struct Load {
    rate: Option<u64>,
    secs: Duration,
    connections: usize,
}

#[derive(Clone)]
struct Result_ {
    requests: usize,
    errors: usize,
    throughput: f64,
    p50_us: f64,
    p99_us: f64,
    /// Server CPU per request, filled in by the caller.
    cpu_us: f64,
}

/// The median of `xs` (NaN when empty).
fn median(xs: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = xs.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

async fn drive(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    load: &Load,
    bodies: Arc<Vec<Bytes>>,
) -> Result<Result_, BoxError> {
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for c in 0..load.connections {
        let mut s = connect(addr, tls.clone()).await?;
        let (bodies, secs, rate, n) = (bodies.clone(), load.secs, load.rate, load.connections);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let interval = rate.map(|r| Duration::from_secs_f64(n as f64 / r as f64));
            let mut i = c;
            tokio::time::sleep_until(start.into()).await;
            loop {
                let scheduled = match interval {
                    // Connections are staggered so the rate is even, not bursty.
                    Some(iv) => {
                        start + iv.mul_f64(lat.len() as f64 + errors as f64 + c as f64 / n as f64)
                    }
                    None => Instant::now(),
                };
                if scheduled >= start + secs {
                    break;
                }
                // A connection still busy at its scheduled time was held up by the server: that
                // wait counts. Waking late from tokio's 1 ms timer is the client's own delay and
                // does not.
                let busy = Instant::now() > scheduled;
                tokio::time::sleep_until(scheduled.into()).await;
                let t0 = if busy { scheduled } else { Instant::now() };
                match send(&mut s, &bodies[i % bodies.len()]).await {
                    Ok(()) => lat.push(t0.elapsed().as_nanos() as u64),
                    Err(_) => errors += 1,
                }
                i += n;
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await?;
        all.extend(lat);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(f64::NAN, |ns| *ns as f64 / 1000.0)
    };
    Ok(Result_ {
        requests: all.len(),
        errors,
        throughput: all.len() as f64 / load.secs.as_secs_f64(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        cpu_us: f64::NAN,
    })
}

/// CPU time of the admission step alone (decode, decide, encode), in this process.
fn decision_cost(bodies: &[Bytes], rounds: u32) -> Result<(), BoxError> {
    let mut registry = Registry::default();
    let state = tessera_webhook::WebhookState::new(
        AdmissionConfig {
            cluster_domain: "cluster.local".into(),
            spiffe: None,
        },
        tessera_webhook::metrics::Metrics::register(&mut registry),
        Duration::from_secs(5),
    );
    state.set_profiles(shipped_profiles()?.profiles, 0);
    for body in bodies {
        let start = Instant::now();
        let (mut patched, mut answer) = (false, 0);
        for _ in 0..rounds {
            let a = tessera_webhook::admission::review(&state, body)?;
            patched = a.outcome == tessera_webhook::metrics::Outcome::Patched;
            answer = a.body.len();
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
        let start = Instant::now();
        for _ in 0..rounds {
            let r: tessera_webhook::review::Review<'_> =
                serde_json::from_str(std::str::from_utf8(body)?)?;
            std::hint::black_box(r);
        }
        let decode = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
        println!(
            "decision  {:>6} bytes  {us:>6.1} µs (decode alone {decode:>5.1} µs)  answer {answer:>5} bytes  {}",
            body.len(),
            if patched { "patched" } else { "unchanged" }
        );
    }
    Ok(())
}

fn shipped_profiles() -> Result<profiles::Loaded, BoxError> {
    let mut text = String::new();
    for name in [
        "zookeeper",
        "rocketmq-broker",
        "kafka",
        "mesh",
        "gpu-sharing",
    ] {
        text.push_str("---\n");
        text.push_str(&std::fs::read_to_string(
            root().join(format!("manifests/profiles/{name}.yaml")),
        )?);
    }
    Ok(profiles::parse(&text))
}

fn run(setup: &Setup) -> Result<(), BoxError> {
    let (secs, connections) = (setup.secs, setup.connections);
    let dir = std::env::temp_dir().join(format!("tessera-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])?.self_signed(&key)?;
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_path, cert.pem())?;
    std::fs::write(&key_path, key.serialize_pem())?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(cert.der().to_vec()))?;
    let tls = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let bodies = Arc::new(bodies(setup.pretty, None)?);
    decision_cost(&bodies, 2000)?;
    let rt = match setup.client_threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    // Decided once, before pinning: the CPU count read afterwards is the client's one CPU.
    let pinned = pinning(setup);
    if let Some((_, client_cpus)) = &pinned {
        pin_self(client_cpus)?;
    }
    println!(
        "{} fixture reviews ({}), {connections} keep-alive connections, {} s per run; each server in its own process with {} runtime thread(s), client on {} thread(s){}",
        bodies.len(),
        if setup.pretty {
            "pretty-printed as stored"
        } else {
            "compact, as the apiserver sends them"
        },
        secs.as_secs(),
        setup.server_threads,
        setup.client_threads,
        pinned.as_ref().map_or(String::new(), |(s, c)| format!(
            ", server pinned to CPU {s}, client to CPU {c}"
        )),
    );
    println!(
        "{:<9} {:>10} {:>9} {:>7} {:>12} {:>9} {:>9} {:>16} {:>12} {:>8}",
        "server",
        "load",
        "requests",
        "errors",
        "throughput/s",
        "p50 µs",
        "p99 µs",
        "p99 range µs",
        "CPU µs/req",
        "RSS MiB"
    );
    let kinds = ["webhook", "framework", "nothing"];
    let rates = &setup.rates;
    let servers = kinds
        .iter()
        .map(|kind| {
            let server_cpu = pinned.as_ref().map(|(s, _)| s.as_str());
            let log = dir.join(format!("{kind}.log"));
            Server::spawn(kind, (&cert_path, &key_path, &log), setup, server_cpu)
        })
        .collect::<Result<Vec<_>, _>>()?;
    // runs[kind][rate]: one measurement per round.
    let mut runs = vec![vec![Vec::new(); rates.len()]; kinds.len()];
    for _ in 0..setup.rounds {
        for (r, rate) in rates.iter().enumerate() {
            for (k, server) in servers.iter().enumerate() {
                let load = Load {
                    rate: *rate,
                    secs,
                    connections,
                };
                let cpu = server.cpu_ns();
                let mut m = rt.block_on(drive(server.addr, tls.clone(), &load, bodies.clone()))?;
                m.cpu_us =
                    server.cpu_ns().saturating_sub(cpu) as f64 / 1000.0 / m.requests.max(1) as f64;
                runs[k][r].push(m);
            }
        }
    }
    for (k, kind) in kinds.iter().enumerate() {
        for (r, rate) in rates.iter().enumerate() {
            let m = &runs[k][r];
            let label = rate.map_or("full".to_string(), |r| format!("{r}/s"));
            let p99s: Vec<f64> = m.iter().map(|x| x.p99_us).collect();
            println!(
                "{kind:<9} {label:>10} {:>9} {:>7} {:>12.0} {:>9.0} {:>9.0} {:>16} {:>12.1} {:>8.1}",
                m.iter().map(|x| x.requests).sum::<usize>(),
                m.iter().map(|x| x.errors).sum::<usize>(),
                median(m.iter().map(|x| x.throughput)),
                median(m.iter().map(|x| x.p50_us)),
                median(p99s.iter().copied()),
                format!(
                    "{:.0}–{:.0}",
                    p99s.iter().copied().fold(f64::INFINITY, f64::min),
                    p99s.iter().copied().fold(0.0, f64::max)
                ),
                median(m.iter().map(|x| x.cpu_us)),
                servers[k].rss_mib()
            );
        }
    }
    if let Some(f) = rates.iter().position(Option::is_none) {
        let full = |k: usize| median(runs[k][f].iter().map(|x| x.throughput));
        println!(
            "full-speed throughput ratio (medians) webhook / do-nothing: {:.2}, framework / do-nothing: {:.2}",
            full(0) / full(2),
            full(1) / full(2)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

//! One run, from setup to verdict: the interpreter. It is the only place with sockets, processes
//! and the clock; what it does comes from pure plans (the op stream, the fault schedule).
//!
//! Phases:
//! 1. **setup**: find (or build) `kvs`, make the results folder, start the proxies and the
//!    cluster, wait until every shard has a leader;
//! 2. **run**: `concurrency` workers, each one logical client with one op open at a time, take
//!    ops from the generator for the time limit while the nemesis follows its schedule; a
//!    sampler records who leads what; everything is streamed to the results folder;
//! 3. **heal**: every fault healed, every node running and resumed, every link passing;
//! 4. **quiet**: every shard must serve again (a probe read on each) within the quiet period;
//!    a cluster that does not is a finding, and the run is not valid;
//! 5. **final reads**: each of the workload's final reads until it succeeds (bounded);
//! 6. **teardown**, then **check** the history from its file, and write the summary.

use crate::check::{check_dir, Checked};
use crate::client::{Client, ReadVia};
use crate::db::{Db, KvsDb, KvsOptions, LeaderSample};
use crate::history::{Clock, Completion, EventLog, Recorder};
use crate::nemesis::{partition, schedule, Fault, FaultKind, NodeId, Step};
use crate::network::Network;
use crate::store;
use crate::test::TestSpec;
use anyhow::Context as _;
use kvs::client::ClientOptions;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use workloads::{Generator, Op, Outcome, Rng, WorkloadSpec};

/// How long the cluster may take to elect its first leaders.
const SETUP_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the sampler asks who leads.
const LEADER_SAMPLE_INTERVAL: Duration = Duration::from_millis(500);
/// How often the history is flushed to disk.
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// How long the final reads may take in all.
const FINAL_READS_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between two attempts of a final read or a probe.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Set when the run must stop early (Ctrl-C, SIGTERM).
#[derive(Default)]
pub struct Interrupt {
    set: AtomicBool,
    notify: Notify,
}

impl Interrupt {
    /// Asks the run to stop.
    pub fn trigger(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether the run was asked to stop.
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Sleeps until `deadline`; false if interrupted first.
    async fn sleep_until(&self, deadline: Instant) -> bool {
        let notified = self.notify.notified();
        if self.is_set() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline.into()) => !self.is_set(),
            () = notified => false,
        }
    }
}

/// A finished run.
#[derive(Debug)]
pub struct Finished {
    /// Its results folder.
    pub dir: PathBuf,
    /// The verdict.
    pub outcome: Outcome,
    /// One line saying why.
    pub reason: String,
    /// The summary as written to `summary.json`.
    pub summary: Value,
}

/// Why a run could not be carried out (exit code 255).
#[derive(Debug)]
pub struct RunError {
    /// The results folder, if one was made.
    pub dir: Option<PathBuf>,
    /// What went wrong.
    pub error: anyhow::Error,
}

/// Carries out one run.
///
/// # Errors
/// The run could not be carried out: no kvs binary, no results folder, the cluster never became
/// ready, the history could not be written or read back.
pub async fn run(spec: TestSpec, interrupt: Arc<Interrupt>) -> Result<Finished, RunError> {
    let dir = match &spec.results_dir {
        Some(d) => std::fs::create_dir_all(d).map(|()| d.clone()),
        None => store::create_run_dir(
            &spec.results_root,
            spec.workload.name(),
            &spec.faults_name("+"),
        ),
    }
    .and_then(|d| std::fs::canonicalize(&d))
    .with_context(|| "creating the results folder".to_string())
    .map_err(|error| RunError { dir: None, error })?;
    if spec.results_dir.is_none() {
        let _ = store::point_latest(&spec.results_root, &dir);
    }
    run_in(&spec, &dir, &interrupt)
        .await
        .map_err(|error| RunError {
            dir: Some(dir),
            error,
        })
}

/// Timings of the phases, in seconds.
#[derive(Debug, Default, Serialize)]
struct Timings {
    setup_s: f64,
    run_s: f64,
    heal_s: f64,
    recovery_s: Option<f64>,
    final_reads_s: f64,
    teardown_s: f64,
    check_s: f64,
}

async fn run_in(
    spec: &TestSpec,
    dir: &Path,
    interrupt: &Arc<Interrupt>,
) -> anyhow::Result<Finished> {
    let mut timings = Timings::default();
    let setup_started = Instant::now();
    let bin = crate::kvs_bin::find(spec.kvs_bin.as_deref())?;
    let kvs_version = std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let mut seeds = Rng::new(spec.seed);
    let (op_seed, nemesis_seed, net_seed) = (seeds.next_u64(), seeds.next_u64(), seeds.next_u64());
    let db = KvsDb::start(
        KvsOptions {
            bin: bin.clone(),
            dir: dir.to_path_buf(),
            node_count: spec.node_count,
            shard_count: spec.shard_count,
            replica_count: spec.replica_count,
            snapshot_log_entries_max: spec.snapshot_log_entries_max,
            extra_args: bug_args(spec, None),
            node_args: (1..=spec.node_count as u64)
                .map(|id| (id, bug_args(spec, Some(id))))
                .filter(|(_, args)| !args.is_empty())
                .collect(),
            seed: net_seed,
            disk_faults: spec.faults.contains(&FaultKind::Disk),
        },
        SETUP_READY_TIMEOUT,
    )
    .await
    .context("starting the cluster")?;
    let db: Arc<KvsDb> = Arc::new(db);
    let network = db.network();
    if !spec.peer_latency.is_zero() {
        // After setup, so that the cluster elects its first leaders at full speed.
        network.set_base_peer_policy(Some(crate::net::LinkPolicy::delayed(
            spec.peer_latency,
            spec.peer_latency,
        )));
    }
    let done = Arc::new(Interrupt::default());
    // Whatever happens below (an error, a panic), no node or proxy outlives the run.
    let _guard = TeardownGuard {
        db: db.clone(),
        done: done.clone(),
    };
    timings.setup_s = setup_started.elapsed().as_secs_f64();

    let clock = Clock::start();
    let rec = Recorder::create(&dir.join(store::HISTORY_FILE), clock)?;
    let nemesis_log = EventLog::create(&dir.join(store::NEMESIS_FILE), clock)?;
    let leaders_log = EventLog::create(&dir.join(store::LEADERS_FILE), clock)?;
    let workload = WorkloadSpec {
        clients_per_key: spec.clients_per_key,
        ops_per_key: spec.ops_per_key,
        ..WorkloadSpec::new(spec.workload, spec.concurrency)
    };
    workload.validate().map_err(anyhow::Error::msg)?;
    let steps = schedule(
        nemesis_seed,
        &spec.faults,
        spec.time_limit,
        spec.nemesis_interval,
    );
    let shared = Arc::new(Shared {
        rec: rec.clone(),
        generator: Mutex::new(Generator::new(workload, op_seed)),
        stop: AtomicBool::new(false),
        next_process: AtomicU64::new(spec.concurrency as u64),
        limiter: (spec.rate > 0.0).then(|| Limiter::new(spec.rate)),
        endpoints: db.client_endpoints(),
        client_options: ClientOptions {
            op_timeout: spec.op_timeout,
            ..ClientOptions::default()
        },
        read_via: spec.read_via,
        active_fault: Mutex::new(None),
        findings: Mutex::new(Vec::new()),
    });

    // The background tasks: flusher, leader sampler (and crash watch), progress.
    let flusher = tokio::spawn(flush_loop(rec.clone(), done.clone()));
    let sampler = tokio::spawn(sample_loop(
        db.clone(),
        leaders_log.clone(),
        nemesis_log.clone(),
        shared.clone(),
        done.clone(),
    ));
    let progress = tokio::spawn(progress_loop(
        shared.clone(),
        spec.time_limit,
        spec.progress,
        done.clone(),
    ));

    // Phase 2: the workers and the nemesis, for the time limit.
    let run_started = Instant::now();
    let workers: Vec<_> = (0..spec.concurrency)
        .map(|w| tokio::spawn(worker(w, shared.clone())))
        .collect();
    let nemesis = tokio::spawn(nemesis_loop(
        steps,
        db.clone(),
        network.clone(),
        nemesis_log.clone(),
        clock,
        shared.clone(),
        interrupt.clone(),
    ));
    interrupt.sleep_until(clock.at(spec.time_limit)).await;
    shared.stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.context("a worker panicked")?;
    }
    let faults = nemesis.await.context("the nemesis panicked")?;
    timings.run_s = run_started.elapsed().as_secs_f64();

    // Phase 3: heal everything.
    let heal_started = Instant::now();
    let mut findings = std::mem::take(&mut *shared.findings.lock().expect("findings lock"));
    findings.extend(heal_all(db.as_ref(), &network, &nemesis_log)?);
    timings.heal_s = heal_started.elapsed().as_secs_f64();

    // Phases 4 and 5: the cluster must serve again; then the final reads.
    let mut interrupted = interrupt.is_set();
    let mut serving = false;
    if !interrupted {
        let quiet_started = Instant::now();
        match wait_serving(db.as_ref(), &shared, spec.quiet_period, interrupt).await {
            Ok(()) => {
                timings.recovery_s = Some(quiet_started.elapsed().as_secs_f64());
                serving = true;
            }
            Err(e) => findings.push(e),
        }
        interrupted = interrupt.is_set();
    }
    if !interrupted && serving {
        let final_started = Instant::now();
        if let Err(e) = final_reads(&shared, spec.concurrency, interrupt).await {
            findings.push(e);
        }
        timings.final_reads_s = final_started.elapsed().as_secs_f64();
        interrupted = interrupt.is_set();
    }

    // Phase 6: teardown and check.
    let teardown_started = Instant::now();
    done.trigger();
    let _ = flusher.await;
    let _ = sampler.await;
    let _ = progress.await;
    // Nodes that died by themselves after the heal are findings too.
    findings.extend(std::mem::take(
        &mut *shared.findings.lock().expect("findings lock"),
    ));
    findings.extend(note_exits(db.as_ref(), &nemesis_log));
    rec.flush().context("writing the history")?;
    let disk = db.disk_stats();
    db.teardown();
    timings.teardown_s = teardown_started.elapsed().as_secs_f64();

    // A history that cannot be judged (it does not parse, or does not fit the workload's model)
    // is an unknown verdict, never a valid one.
    let checked = check_dir(dir, spec.workload, spec.check_budget)
        .map_err(|e| format!("the history could not be judged: {e:#}"));
    if let Ok(c) = &checked {
        timings.check_s = c.check_secs;
    }
    let (outcome, reason) = verdict(checked.as_ref(), &findings, interrupted);
    let mut summary = summary(
        spec,
        dir,
        &bin,
        kvs_version,
        &rec,
        &faults,
        checked.as_ref().ok(),
        &findings,
        &timings,
        outcome,
        &reason,
        interrupted,
    );
    if let Some(disk) = disk {
        summary["disk"] = disk;
    }
    std::fs::write(
        dir.join(store::SUMMARY_FILE),
        serde_json::to_vec_pretty(&summary).context("encoding the summary")?,
    )?;
    // The pages are for people; a run whose page cannot be drawn still has its verdict.
    if let Err(e) = crate::report::render_run(dir) {
        eprintln!("harness: the run's page could not be written: {e:#}");
    }
    if spec.results_dir.is_none() {
        if let Err(e) = crate::report::render_index(&spec.results_root) {
            eprintln!("harness: the runs index could not be written: {e:#}");
        }
    }
    Ok(Finished {
        dir: dir.to_path_buf(),
        outcome,
        reason,
        summary,
    })
}

/// The summary's `check` section.
#[must_use]
pub fn check_section(c: &Checked) -> Value {
    json!({
        "outcome": c.judged.outcome.name(),
        "reason": c.judged.reason,
        "op_count": c.op_count,
        "key_count": c.judged.key_count,
        "invalid_keys": c.judged.invalid_keys,
        "unknown_keys": c.judged.unknown_keys,
    })
}

/// Judges a stored run again (`harness check`): writes the checker's report, brings the
/// summary's verdict up to date (the run's findings still count), and draws its page again.
///
/// # Errors
/// The history cannot be read or judged.
pub fn recheck(
    dir: &Path,
    workload: workloads::WorkloadKind,
    budget: crate::check::CheckBudget,
) -> anyhow::Result<(Checked, Outcome, String)> {
    let checked = check_dir(dir, workload, budget)?;
    let path = dir.join(store::SUMMARY_FILE);
    let mut summary: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let findings: Vec<String> = summary["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let interrupted = summary["interrupted"].as_bool().unwrap_or(false);
    let (outcome, reason) = verdict(Ok(&checked), &findings, interrupted);
    if summary.is_object() {
        summary["check"] = check_section(&checked);
        summary["verdict"] = outcome.name().into();
        summary["reason"] = reason.clone().into();
        summary["rechecked_utc"] = store::utc_stamp(store::now_epoch_secs()).into();
        std::fs::write(&path, serde_json::to_vec_pretty(&summary)?)?;
    }
    if let Err(e) = crate::report::render_run(dir) {
        eprintln!("harness: the run's page could not be written: {e:#}");
    }
    Ok((checked, outcome, reason))
}

/// Stops the background tasks and the cluster when the run ends, however it ends.
struct TeardownGuard {
    db: Arc<KvsDb>,
    done: Arc<Interrupt>,
}

impl Drop for TeardownGuard {
    fn drop(&mut self) {
        self.done.trigger();
        self.db.teardown();
    }
}

/// The `kvs serve` arguments of every node (`node: None`: the extra arguments and the bugs
/// planted everywhere) or of one node only (the bugs planted in it alone).
fn bug_args(spec: &TestSpec, node: Option<u64>) -> Vec<String> {
    let mut args = if node.is_none() {
        spec.kvs_args.clone()
    } else {
        Vec::new()
    };
    for b in spec.bugs.iter().filter(|b| b.node == node) {
        args.push("--bug".to_string());
        args.push(b.bug.clone());
    }
    args
}

/// The verdict: the checker's, unless the cluster broke a liveness promise (a finding makes the
/// run invalid whatever the history says) or the run was interrupted before its end (then only
/// an anomaly can be trusted).
pub fn verdict(
    checked: Result<&Checked, &String>,
    findings: &[String],
    interrupted: bool,
) -> (Outcome, String) {
    let judged = match checked {
        Ok(c) => &c.judged,
        Err(e) if findings.is_empty() => return (Outcome::Unknown, e.clone()),
        Err(e) => return (Outcome::Invalid, format!("{}; {e}", findings.join("; "))),
    };
    if judged.outcome == Outcome::Invalid {
        return (Outcome::Invalid, judged.reason.clone());
    }
    if !findings.is_empty() {
        return (Outcome::Invalid, findings.join("; "));
    }
    if interrupted {
        return (
            Outcome::Unknown,
            format!(
                "interrupted before the end; the history so far: {}",
                judged.reason
            ),
        );
    }
    (judged.outcome, judged.reason.clone())
}

/// What the workers share.
struct Shared {
    rec: Arc<Recorder>,
    generator: Mutex<Generator>,
    /// Set at the time limit: workers finish the op they have open and stop.
    stop: AtomicBool,
    /// The next fresh process id (a process whose op ended in info never appears again).
    next_process: AtomicU64,
    limiter: Option<Limiter>,
    endpoints: Vec<(NodeId, std::net::SocketAddr)>,
    client_options: ClientOptions,
    read_via: ReadVia,
    /// The fault now in force, for the progress bar.
    active_fault: Mutex<Option<String>>,
    /// What the run found besides the history (a node that exited by itself).
    findings: Mutex<Vec<String>>,
}

impl Shared {
    fn client(&self) -> Client {
        Client::with_reads(&self.endpoints, self.client_options.clone(), self.read_via)
    }

    /// Runs `op` as `process`, recording it (see [`crate::client::perform`]).
    async fn perform(&self, client: &Client, process: &mut u64, op: &Op) -> Completion {
        crate::client::perform(&self.rec, client, process, &self.next_process, op).await
    }
}

/// Caps the total rate: each op takes the next slot `1/rate` after the previous one.
struct Limiter {
    every: Duration,
    next: Mutex<Instant>,
}

impl Limiter {
    fn new(rate: f64) -> Limiter {
        Limiter {
            every: Duration::from_secs_f64(1.0 / rate),
            next: Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().expect("limiter lock");
            let now = Instant::now();
            // A slot not taken in time is not saved up: no bursts after a stall.
            let slot = (*next).max(now);
            *next = slot + self.every;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// One logical client: ops from the generator, one at a time, until the stop.
async fn worker(w: usize, shared: Arc<Shared>) {
    let client = shared.client();
    let mut process = w as u64;
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(l) = &shared.limiter {
            l.wait().await;
            if shared.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        let op = shared.generator.lock().expect("generator lock").next_op(w);
        shared.perform(&client, &mut process, &op).await;
    }
}

/// A fault in force: what the heal must undo.
enum Applied {
    Partition,
    Killed(Vec<NodeId>),
    Paused(Vec<NodeId>),
    Links,
    /// Cut off and paused; resumed at the fault's middle step, the links healed at its heal.
    Deposed(Vec<NodeId>),
}

/// Follows the schedule until it ends or the run stops; heals the fault in force at the stop.
/// Returns the faults injected (name, start and end on the run's clock).
async fn nemesis_loop(
    steps: Vec<Step>,
    db: Arc<KvsDb>,
    network: Arc<Network>,
    log: Arc<EventLog>,
    clock: Clock,
    shared: Arc<Shared>,
    interrupt: Arc<Interrupt>,
) -> Vec<Value> {
    let mut injected = Vec::new();
    for step in steps {
        if !interrupt.sleep_until(clock.at(step.start)).await {
            break;
        }
        let mut rng = Rng::new(step.seed);
        let (applied, detail) = start_fault(&step.fault, db.as_ref(), &network, &mut rng).await;
        let start_ns = log_event(&log, "start", &step.fault, detail);
        *shared.active_fault.lock().expect("fault lock") = Some(step.fault.name());
        if let (Some(after), Applied::Deposed(nodes)) = (
            step.fault.resume_after(
                shared.client_options.op_timeout,
                step.heal.saturating_sub(step.start),
            ),
            &applied,
        ) {
            if interrupt.sleep_until(clock.at(step.start + after)).await {
                let pids: BTreeMap<NodeId, u32> = nodes
                    .iter()
                    .filter_map(|&n| db.resume(n).map(|pid| (n, pid)))
                    .collect();
                let mut detail = Map::new();
                detail.insert("resumed".into(), json!(pids));
                log_event(&log, "resume", &step.fault, detail);
            }
        }
        interrupt.sleep_until(clock.at(step.heal)).await;
        let detail = heal_fault(applied, db.as_ref(), &network);
        let end_ns = log_event(&log, "heal", &step.fault, detail);
        *shared.active_fault.lock().expect("fault lock") = None;
        injected.push(json!({
            "fault": step.fault.name(),
            "kind": step.fault.kind().name(),
            "start_ns": start_ns,
            "end_ns": end_ns,
        }));
    }
    injected
}

fn log_event(log: &EventLog, event: &str, fault: &Fault, detail: Map<String, Value>) -> u64 {
    let mut line = Map::new();
    line.insert("event".into(), event.into());
    line.insert("fault".into(), fault.name().into());
    line.insert("kind".into(), fault.kind().name().into());
    line.insert("color".into(), fault.color().into());
    line.extend(detail);
    // The nemesis log is a record, not a control: a write error leaves it short, and the
    // history (which is checked) says what the clients saw.
    log.write(line).unwrap_or(0)
}

async fn start_fault(
    fault: &Fault,
    db: &KvsDb,
    network: &Network,
    rng: &mut Rng,
) -> (Applied, Map<String, Value>) {
    let nodes = db.nodes();
    let mut detail = Map::new();
    let leaders_needed = matches!(
        fault,
        Fault::Partition(crate::nemesis::Shape::Leaders)
            | Fault::Kill(crate::nemesis::Targets::Leaders)
            | Fault::Pause(crate::nemesis::Targets::Leaders)
            | Fault::Depose
    );
    let leaders = if leaders_needed {
        let sample = db.leaders().await;
        detail.insert("leaders".into(), json!(sample.leaders()));
        sample.leader_nodes()
    } else {
        Vec::new()
    };
    let applied = match fault {
        Fault::Partition(shape) => {
            let p = partition::partition(*shape, &nodes, &leaders, rng);
            network.partition(&p.cuts);
            detail.insert("description".into(), p.description.clone().into());
            detail.insert("cuts".into(), json!(p.cuts));
            Applied::Partition
        }
        Fault::Kill(targets) => {
            let picked = targets.pick(&nodes, &leaders, rng);
            let pids = kill_each(db, &picked);
            detail.insert("nodes".into(), json!(picked));
            detail.insert("pids".into(), json!(pids));
            Applied::Killed(picked)
        }
        Fault::Pause(targets) => {
            let picked = targets.pick(&nodes, &leaders, rng);
            let pids: BTreeMap<NodeId, u32> = picked
                .iter()
                .filter_map(|&n| db.pause(n).map(|pid| (n, pid)))
                .collect();
            detail.insert("nodes".into(), json!(picked));
            detail.insert("pids".into(), json!(pids));
            Applied::Paused(picked)
        }
        Fault::Slow {
            delay_ms,
            jitter_ms,
        } => {
            network.set_peer_policy(Some(crate::net::LinkPolicy::delayed(
                Duration::from_millis(*delay_ms),
                Duration::from_millis(*jitter_ms),
            )));
            detail.insert("links".into(), "every node-to-node link".into());
            Applied::Links
        }
        Fault::Flaky {
            loss,
            duplicate,
            reorder,
        } => {
            network.set_peer_policy(Some(crate::net::LinkPolicy::flaky(
                *loss, *duplicate, *reorder,
            )));
            detail.insert("links".into(), "every node-to-node link".into());
            Applied::Links
        }
        Fault::Disk { targets, torn } => {
            let picked = targets.pick(&nodes, &leaders, rng);
            let pids = kill_each(db, &picked);
            // Every target is dead (killed and reaped) before any disk forgets: a power cut.
            let mut lost = BTreeMap::new();
            for &n in &picked {
                let torn_seed = torn.then(|| rng.next_u64());
                match db.lose_unsynced(n, torn_seed) {
                    Ok(report) => lost.insert(n, report),
                    Err(e) => lost.insert(n, json!({ "error": format!("{e:#}") })),
                };
            }
            detail.insert("nodes".into(), json!(picked));
            detail.insert("pids".into(), json!(pids));
            detail.insert("lost".into(), json!(lost));
            Applied::Killed(picked)
        }
        Fault::Depose => {
            // One leader: the shards it leads elect new leaders among the others and serve
            // meanwhile (deposing a minority at once can leave a shard without a majority).
            let mut picked = crate::nemesis::Targets::Leaders.pick(&nodes, &leaders, rng);
            picked.truncate(1);
            let cuts = partition::isolate(&picked, &nodes);
            network.partition(&cuts);
            let pids: BTreeMap<NodeId, u32> = picked
                .iter()
                .filter_map(|&n| db.pause(n).map(|pid| (n, pid)))
                .collect();
            detail.insert(
                "description".into(),
                format!("leader {picked:?} cut off and paused, to be resumed still cut off").into(),
            );
            detail.insert("nodes".into(), json!(picked));
            detail.insert("pids".into(), json!(pids));
            detail.insert("cuts".into(), json!(cuts));
            Applied::Deposed(picked)
        }
    };
    (applied, detail)
}

/// SIGKILLs each node (and reaps it); the pids of those that were running.
fn kill_each(db: &KvsDb, nodes: &[NodeId]) -> BTreeMap<NodeId, u32> {
    nodes
        .iter()
        .filter_map(|&n| db.kill(n).ok().flatten().map(|pid| (n, pid)))
        .collect()
}

fn heal_fault(applied: Applied, db: &KvsDb, network: &Network) -> Map<String, Value> {
    let mut detail = Map::new();
    match applied {
        Applied::Partition | Applied::Links => network.heal(),
        Applied::Deposed(nodes) => {
            network.heal();
            // Resumed at the middle step, unless the run stopped before it.
            let pids: BTreeMap<NodeId, u32> = nodes
                .iter()
                .filter(|&&n| db.is_paused(n))
                .filter_map(|&n| db.resume(n).map(|pid| (n, pid)))
                .collect();
            if !pids.is_empty() {
                detail.insert("resumed".into(), json!(pids));
            }
        }
        Applied::Killed(nodes) => {
            let mut pids = BTreeMap::new();
            let mut errors = BTreeMap::new();
            for n in nodes {
                match db.start(n) {
                    Ok(pid) => {
                        pids.insert(n, pid);
                    }
                    Err(e) => {
                        errors.insert(n, format!("{e:#}"));
                    }
                }
            }
            detail.insert("restarted".into(), json!(pids));
            if !errors.is_empty() {
                detail.insert("errors".into(), json!(errors));
            }
        }
        Applied::Paused(nodes) => {
            let pids: BTreeMap<NodeId, u32> = nodes
                .iter()
                .filter_map(|&n| db.resume(n).map(|pid| (n, pid)))
                .collect();
            detail.insert("resumed".into(), json!(pids));
        }
    }
    detail
}

/// The final phase's heal: every link passing, every node resumed and running. A node that is
/// not running although no fault killed it exited by itself: a finding.
fn heal_all(db: &KvsDb, network: &Network, log: &EventLog) -> anyhow::Result<Vec<String>> {
    let findings = note_exits(db, log);
    network.heal();
    let mut resumed = Vec::new();
    let mut restarted = BTreeMap::new();
    for node in db.nodes() {
        if db.is_paused(node) {
            db.resume(node);
            resumed.push(node);
        }
        if !db.is_running(node) {
            let pid = db
                .start(node)
                .with_context(|| format!("restarting node {node}"))?;
            restarted.insert(node, pid);
        }
    }
    let mut line = Map::new();
    line.insert("event".into(), "heal-all".into());
    line.insert("resumed".into(), json!(resumed));
    line.insert("restarted".into(), json!(restarted));
    log.write(line)?;
    Ok(findings)
}

/// Records nodes that exited by themselves in the nemesis log; returns them as findings.
fn note_exits(db: &KvsDb, log: &EventLog) -> Vec<String> {
    db.exited()
        .into_iter()
        .map(|(node, status)| {
            let mut line = Map::new();
            line.insert("event".into(), "crash".into());
            line.insert("node".into(), node.into());
            line.insert("status".into(), status.clone().into());
            let _ = log.write(line);
            format!("node {node} exited by itself ({status})")
        })
        .collect()
}

/// Waits until a read of every probe key (one per shard) succeeds, at most `quiet`.
async fn wait_serving(
    db: &KvsDb,
    shared: &Shared,
    quiet: Duration,
    interrupt: &Interrupt,
) -> Result<(), String> {
    let deadline = Instant::now() + quiet;
    let client = shared.client();
    let mut waiting: Vec<String> = db.probe_keys();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for key in waiting {
            let op = Op::Read {
                key: key.clone(),
                shape: workloads::ReadShape::Value,
            };
            if !matches!(client.invoke(&op, 0).await.0, Completion::Ok(_)) {
                still.push(key);
            }
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        if Instant::now() >= deadline || interrupt.is_set() {
            let sample = db.leaders().await;
            return Err(format!(
                "the healed cluster did not serve every shard within the quiet period of {:?} \
                 ({} shards could not be read; leaders then: {:?}; unreachable nodes: {:?})",
                quiet,
                waiting.len(),
                sample
                    .leaders()
                    .values()
                    .map(|c| (c.shard, c.node))
                    .collect::<Vec<_>>(),
                sample.unreachable
            ));
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    Ok(())
}

/// Performs every final read until it succeeds, `concurrency` at a time, within
/// [`FINAL_READS_TIMEOUT`]. Each attempt is recorded.
async fn final_reads(
    shared: &Arc<Shared>,
    concurrency: usize,
    interrupt: &Arc<Interrupt>,
) -> Result<(), String> {
    let ops: VecDeque<Op> = shared
        .generator
        .lock()
        .expect("generator lock")
        .final_reads()
        .into();
    let total = ops.len();
    let queue = Arc::new(Mutex::new(ops));
    let deadline = Instant::now() + FINAL_READS_TIMEOUT;
    let failed = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (shared, queue, failed, interrupt) = (
                shared.clone(),
                queue.clone(),
                failed.clone(),
                interrupt.clone(),
            );
            tokio::spawn(async move {
                let client = shared.client();
                let mut process = shared.next_process.fetch_add(1, Ordering::Relaxed);
                loop {
                    let Some(op) = queue.lock().expect("queue lock").pop_front() else {
                        return;
                    };
                    loop {
                        if matches!(
                            shared.perform(&client, &mut process, &op).await,
                            Completion::Ok(_)
                        ) {
                            break;
                        }
                        if Instant::now() >= deadline || interrupt.is_set() {
                            failed
                                .lock()
                                .expect("failed lock")
                                .push(op.key().to_string());
                            break;
                        }
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let failed = failed.lock().expect("failed lock");
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {total} final reads did not succeed within {:?} (first: key {:?})",
            failed.len(),
            FINAL_READS_TIMEOUT,
            failed[0]
        ))
    }
}

async fn flush_loop(rec: Arc<Recorder>, done: Arc<Interrupt>) {
    loop {
        let _ = rec.flush();
        if !done.sleep_until(Instant::now() + FLUSH_INTERVAL).await {
            return;
        }
    }
}

/// Samples who leads what until the run is done; notes nodes that exit by themselves.
async fn sample_loop(
    db: Arc<KvsDb>,
    log: Arc<EventLog>,
    nemesis_log: Arc<EventLog>,
    shared: Arc<Shared>,
    done: Arc<Interrupt>,
) {
    let mut elections = BTreeMap::new();
    loop {
        let exits = note_exits(db.as_ref(), &nemesis_log);
        shared.findings.lock().expect("findings lock").extend(exits);
        let sample: LeaderSample = db.leaders().await;
        let doubles = sample.election_safety(&mut elections);
        for d in &doubles {
            let mut line = Map::new();
            line.insert("event".into(), "two-leaders".into());
            line.insert("text".into(), d.clone().into());
            let _ = nemesis_log.write(line);
        }
        shared
            .findings
            .lock()
            .expect("findings lock")
            .extend(doubles);
        let mut line = Map::new();
        line.insert(
            "leaders".into(),
            json!(sample
                .leaders()
                .values()
                .map(|c| (c.shard.to_string(), json!({"node": c.node, "term": c.term})))
                .collect::<Map<String, Value>>()),
        );
        line.insert("claims".into(), json!(sample.claims));
        line.insert("unreachable".into(), json!(sample.unreachable));
        let _ = log.write(line);
        if !done
            .sleep_until(Instant::now() + LEADER_SAMPLE_INTERVAL)
            .await
        {
            return;
        }
    }
}

/// Draws the progress bar (or, without a terminal, a line every ten seconds).
async fn progress_loop(
    shared: Arc<Shared>,
    time_limit: Duration,
    enabled: bool,
    done: Arc<Interrupt>,
) {
    if !enabled {
        return;
    }
    let bar = indicatif::ProgressBar::new(time_limit.as_secs().max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:25}] {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let mut last_line = Instant::now();
    loop {
        let counts = &shared.rec.counts;
        let fault = shared
            .active_fault
            .lock()
            .expect("fault lock")
            .clone()
            .unwrap_or_else(|| "no fault".into());
        let phase = if shared.stop.load(Ordering::Relaxed) {
            "final phase".to_string()
        } else {
            fault
        };
        let msg = format!(
            "ops {} (ok {}, fail {}, info {}) | {phase}",
            counts.total(),
            counts.ok.load(Ordering::Relaxed),
            counts.fail.load(Ordering::Relaxed),
            counts.info.load(Ordering::Relaxed),
        );
        bar.set_position(started.elapsed().as_secs().min(time_limit.as_secs()));
        if bar.is_hidden() {
            if last_line.elapsed() >= Duration::from_secs(10) {
                eprintln!("harness: {:>4}s {msg}", started.elapsed().as_secs());
                last_line = Instant::now();
            }
        } else {
            bar.set_message(msg);
        }
        if !done
            .sleep_until(Instant::now() + Duration::from_millis(250))
            .await
        {
            bar.finish_and_clear();
            return;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn summary(
    spec: &TestSpec,
    dir: &Path,
    bin: &Path,
    kvs_version: Option<String>,
    rec: &Recorder,
    faults: &[Value],
    checked: Option<&Checked>,
    findings: &[String],
    timings: &Timings,
    outcome: Outcome,
    reason: &str,
    interrupted: bool,
) -> Value {
    let counts = &rec.counts;
    json!({
        "command_line": spec.command_line,
        "seed": spec.seed,
        "started_utc": store::utc_stamp(store::now_epoch_secs().saturating_sub(rec.clock().elapsed().as_secs())),
        "results_dir": dir,
        "settings": {
            "workload": spec.workload.name(),
            "faults": spec.faults_name(","),
            "nodes": spec.node_count,
            "shards": spec.shard_count,
            "replicas": spec.replica_count,
            "time_limit_s": spec.time_limit.as_secs_f64(),
            "concurrency": spec.concurrency,
            "clients_per_key": spec.clients_per_key,
            "ops_per_key": spec.ops_per_key,
            "rate": spec.rate,
            "nemesis_interval_s": spec.nemesis_interval.as_secs_f64(),
            "quiet_period_s": spec.quiet_period.as_secs_f64(),
            "op_timeout_s": spec.op_timeout.as_secs_f64(),
            "read_via": spec.read_via.name(),
            "peer_latency_ms": spec.peer_latency.as_millis() as u64,
            "snapshot_log_entries_max": spec.snapshot_log_entries_max,
            "kvs_args": spec.kvs_args,
            "planted_bugs": spec.bugs.iter().map(crate::test::PlantedBug::label).collect::<Vec<_>>(),
            "check_budget": spec.check_budget,
        },
        "versions": {
            "harness": env!("CARGO_PKG_VERSION"),
            "kvs": kvs_version,
            "kvs_bin": bin,
        },
        "counts": {
            "ok": counts.ok.load(Ordering::Relaxed),
            "fail": counts.fail.load(Ordering::Relaxed),
            "info": counts.info.load(Ordering::Relaxed),
            "by_f": counts.by_f(),
        },
        "faults": faults,
        "findings": findings,
        "interrupted": interrupted,
        "verdict": outcome.name(),
        "reason": reason,
        "check": checked.map(check_section),
        "timings": timings,
    })
}

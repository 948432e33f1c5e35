//! A real crash: a child process writes and syncs batches, reporting each completed `sync` on
//! stdout, and is killed with SIGKILL at a random moment (seeded; `KVS_STORAGE_SEED=N` replays
//! the schedule). The reopened log must hold every batch the child reported as synced, and be
//! exactly the state after some later operation of the same deterministic workload.

mod storage_support;

use kvs::storage::{Wal, WalOptions};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use storage_support::*;

const SHAPE: WorkloadShape = WorkloadShape {
    group_count: 8,
    compact_percent: 4,
    install_percent: 1,
    data_bytes_max: 100,
};
const BATCH_STEPS: usize = 8;
const CHILD_DIR: &str = "KVS_STORAGE_CHILD_DIR";
const CHILD_SEED: &str = "KVS_STORAGE_CHILD_SEED";

fn options() -> WalOptions {
    WalOptions {
        segment_bytes_max: 64 * 1024,
        ..WalOptions::default()
    }
}

/// The child: runs only when the parent starts it with its directory in the environment.
#[test]
#[ignore = "started by sigkill_during_writes_loses_nothing_synced"]
fn child_writer_process() {
    let (Ok(dir), Ok(seed)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_SEED)) else {
        return;
    };
    let mut rng = Rng::new(seed.parse().unwrap());
    let mut wal = Wal::open(std::path::Path::new(&dir), options()).unwrap();
    let mut model = Model::default();
    let mut steps = 0usize;
    loop {
        for _ in 0..BATCH_STEPS {
            random_step(&mut rng, SHAPE, &mut wal, &mut model);
            steps += 1;
        }
        wal.sync().unwrap();
        println!("synced {steps}");
    }
}

#[test]
fn sigkill_during_writes_loses_nothing_synced() {
    for seed in seeds(4) {
        println!("seed {seed}");
        let dir = tempfile::tempdir().unwrap();
        let mut schedule = Rng::new(seed ^ 0x5EED);
        let syncs_before_kill = 3 + schedule.below(40);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "child_writer_process",
                "--nocapture",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_SEED, seed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut synced_steps = 0usize;
        let mut seen = 0;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        while seen < syncs_before_kill {
            let line = lines.next().expect("child ended early").unwrap();
            if let Some(n) = line.strip_prefix("synced ") {
                synced_steps = n.parse().unwrap();
                seen += 1;
            }
        }
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        // Anything reported after our last read was synced too: read what is left.
        for line in lines.map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("synced ") {
                synced_steps = n.parse().unwrap();
            }
        }

        let recovered = model_of(&Wal::open(dir.path(), options()).unwrap());
        // Replay the same workload (no fsync, a scratch directory) to know every state.
        let scratch = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(scratch.path(), test_options(64 * 1024)).unwrap();
        let mut rng = Rng::new(seed);
        let mut model = Model::default();
        for _ in 0..synced_steps {
            random_step(&mut rng, SHAPE, &mut wal, &mut model);
        }
        let mut extra = 0;
        while normalized(&model) != recovered {
            assert!(
                extra < 4 * BATCH_STEPS,
                "seed {seed}: recovered state is no state at or after step {synced_steps} \
                 (KVS_STORAGE_SEED={seed} replays)"
            );
            random_step(&mut rng, SHAPE, &mut wal, &mut model);
            extra += 1;
        }
        println!("seed {seed}: killed after {synced_steps} synced steps, recovered {extra} more");
    }
}

//! Several writers on several files, a crash in the middle: each file must come back with
//! its content at its last successful fsync.

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    std::env::var("FAULTFS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

#[test]
fn concurrent_writers_keep_their_last_fsync() {
    let Some(f) = setup() else { return };
    let seed = seed();
    println!("seed = {seed} (rerun with FAULTFS_SEED={seed})");
    let writers = 4;
    for i in 0..writers {
        write_synced(&f.p(&format!("f{i}")), b"");
    }
    sync_dir(&f.mnt);
    let stop = Arc::new(AtomicBool::new(false));
    // Successful syncs of each writer: the crash comes once every one has made some.
    let syncs: Arc<Vec<AtomicU64>> = Arc::new((0..writers).map(|_| AtomicU64::new(0)).collect());
    let confirmed: Vec<Arc<Mutex<Vec<u8>>>> = (0..writers)
        .map(|_| Arc::new(Mutex::new(Vec::new())))
        .collect();
    let mut threads = Vec::new();
    for (i, confirmed) in confirmed.iter().enumerate() {
        let path = f.p(&format!("f{i}"));
        let stop = Arc::clone(&stop);
        let syncs = Arc::clone(&syncs);
        let confirmed = Arc::clone(confirmed);
        let mut rng = Rng(seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        threads.push(thread::spawn(move || {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            let mut model: Vec<u8> = Vec::new();
            let mut ops = 0u64;
            while !stop.load(Ordering::Relaxed) && ops < 100_000 {
                ops += 1;
                let res = match rng.below(10) {
                    0..=5 => {
                        let off = rng.below(model.len() as u64 + 4096);
                        let len = rng.below(9000) as usize + 1;
                        let data = pattern(rng.next(), len);
                        let r = file.write_all_at(&data, off);
                        if r.is_ok() {
                            let end = off as usize + len;
                            if model.len() < end {
                                model.resize(end, 0);
                            }
                            model[off as usize..end].copy_from_slice(&data);
                        }
                        r
                    }
                    6 => {
                        let len = rng.below(model.len() as u64 + 8192);
                        let r = file.set_len(len);
                        if r.is_ok() {
                            model.resize(len as usize, 0);
                        }
                        r
                    }
                    7 => {
                        // Reads see the model (nobody else writes this file).
                        let mut buf = vec![0u8; model.len()];
                        let r = file.read_exact_at(&mut buf, 0);
                        if r.is_ok() {
                            assert_eq!(buf, model, "live read differs from model");
                        }
                        r
                    }
                    _ => {
                        let r = if rng.below(2) == 0 {
                            file.sync_data()
                        } else {
                            file.sync_all()
                        };
                        if r.is_ok() {
                            *confirmed.lock().unwrap() = model.clone();
                            syncs[i].fetch_add(1, Ordering::Relaxed);
                        }
                        r
                    }
                };
                if res.is_err() {
                    // The crash happened: handles from before it are dead.
                    break;
                }
            }
            ops
        }));
    }
    // Crash in the middle: once every writer has synced a few times (and keeps writing), or at
    // the latest after 10 s, whatever they did by then.
    let start = Instant::now();
    while syncs.iter().any(|s| s.load(Ordering::Relaxed) < 200)
        && start.elapsed() < Duration::from_secs(10)
    {
        thread::sleep(Duration::from_millis(5));
    }
    let report = f.crash();
    stop.store(true, Ordering::Relaxed);
    let ops: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let synced: Vec<u64> = syncs.iter().map(|s| s.load(Ordering::Relaxed)).collect();
    println!(
        "ops per writer {ops:?}, syncs {synced:?}, in {:?}, {report:?}",
        start.elapsed()
    );
    assert!(
        synced.iter().all(|&n| n >= 200),
        "seed {seed}: a writer made fewer than 200 syncs in 10 s: {synced:?}"
    );
    // Nothing after the crash could have made anything durable.
    f.crash();
    for (i, confirmed) in confirmed.iter().enumerate() {
        let got = fs::read(f.p(&format!("f{i}"))).unwrap();
        let want = confirmed.lock().unwrap().clone();
        assert!(
            got == want,
            "seed {seed}: f{i} has {} bytes, its last fsync had {} bytes",
            got.len(),
            want.len()
        );
    }
}

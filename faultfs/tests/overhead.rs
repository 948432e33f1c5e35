//! One-off measurement (ignored by default): 4 KiB write + fdatasync through the mount
//! versus directly on the tempdir's filesystem.
//! Run: cargo test -p faultfs --test overhead -- --ignored --nocapture

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn run(path: &Path, n: u64, sync: bool) -> Duration {
    let file = File::create(path).unwrap();
    let block = pattern(5, 4096);
    let start = Instant::now();
    for i in 0..n {
        file.write_all_at(&block, i * 4096).unwrap();
        if sync {
            file.sync_data().unwrap();
        }
    }
    start.elapsed() / n as u32
}

#[test]
#[ignore]
fn write_fdatasync_4k_overhead() {
    let Some(f) = setup() else { return };
    let n = 2000;
    let direct = run(&f.dir.path().join("direct"), n, true);
    let mounted = run(&f.p("through"), n, true);
    println!("4 KiB write+fdatasync x{n}: direct {direct:?}/op, faultfs {mounted:?}/op");
    let direct = run(&f.dir.path().join("direct2"), n, false);
    let mounted = run(&f.p("through2"), n, false);
    println!("4 KiB write only x{n}: direct {direct:?}/op, faultfs {mounted:?}/op");
    drop(f);
    let Some(f) = setup_with(faultfs::Options {
        sync_backing: true,
        ..faultfs::Options::default()
    }) else {
        return;
    };
    let mounted = run(&f.p("through"), n, true);
    println!("4 KiB write+fdatasync x{n}: faultfs with sync_backing {mounted:?}/op");
}

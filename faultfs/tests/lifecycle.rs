//! Mount lifecycle: no mount is left behind, even when busy or after a killed process.

mod common;

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use faultfs::{Mount, Options};

#[test]
fn unmount_while_busy_detaches() {
    let Some(mut f) = setup() else { return };
    write_synced(&f.p("a"), b"a");
    sync_dir(&f.mnt);
    let open = File::open(f.p("a")).unwrap();
    let res = f.mount.take().unwrap().unmount();
    println!("busy unmount: {res:?}");
    assert!(res.is_err());
    assert!(!mounted(&f.mnt), "a busy mount must be detached");
    drop(open);
    // The backing directory is intact and can be mounted again.
    f.remount();
    assert_eq!(read(&f.p("a")), b"a");
}

#[test]
fn dropping_a_mount_unmounts_even_on_panic() {
    let Some(f) = setup() else { return };
    let mnt = f.mnt.clone();
    let res = std::thread::spawn(move || {
        let _f = f;
        panic!("boom");
    })
    .join();
    assert!(res.is_err());
    assert!(!mounted(&mnt));
}

/// Child side of `stale_mount_of_a_killed_process_is_cleared`.
#[test]
#[ignore]
fn child_mounts_and_waits() {
    let (Ok(backing), Ok(mnt)) = (
        std::env::var("FAULTFS_CHILD_BACKING"),
        std::env::var("FAULTFS_CHILD_MNT"),
    ) else {
        return;
    };
    let m = Mount::mount(backing.as_ref(), mnt.as_ref(), Options::default()).unwrap();
    println!("MOUNTED {}", m.mountpoint().display());
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn stale_mount_of_a_killed_process_is_cleared() {
    let Some(mut f) = setup() else { return };
    f.unmount();
    fs::write(f.b("kept"), b"kept").unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_mounts_and_waits",
            "--ignored",
            "--nocapture",
        ])
        .env("FAULTFS_CHILD_BACKING", &f.backing)
        .env("FAULTFS_CHILD_MNT", &f.mnt)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut saw = false;
    for line in out.lines() {
        if line.unwrap().starts_with("MOUNTED") {
            saw = true;
            break;
        }
    }
    assert!(saw, "child did not mount");
    assert!(mounted(&f.mnt));
    child.kill().unwrap();
    child.wait().unwrap();
    // The killed child left a dead mount behind; a sweep finds and clears it.
    assert!(mounted(&f.mnt));
    let mnt = f.mnt.canonicalize().unwrap_or_else(|_| f.mnt.clone());
    assert!(
        faultfs::clear_dead_mounts().contains(&mnt),
        "the dead mount was not swept"
    );
    assert!(!mounted(&f.mnt));
    f.mount = Some(Mount::mount(&f.backing, &f.mnt, Options::default()).unwrap());
    assert_eq!(read(&f.p("kept")), b"kept");
    f.unmount();
    assert!(!mounted(&f.mnt));
}

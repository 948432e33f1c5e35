//! The history a client records against a real node: a write whose answer never comes is an
//! `info` and its client goes on as a fresh process; a read that times out is a `fail`; the file
//! is valid checker input.

use harness::client::{perform, Client};
use harness::history::{Clock, Completion, Recorder};
use kvs::client::ClientOptions;
use kvs::local::{LocalCluster, LocalClusterOptions};
use nix::sys::signal::Signal;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use workloads::{Op, ReadShape};

fn kvs_bin() -> std::path::PathBuf {
    harness::kvs_bin::find(None).expect("the kvs binary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_takes_a_fresh_process_and_a_timed_out_read_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = LocalClusterOptions::new(kvs_bin(), dir.path().to_path_buf());
    options.node_count = 1;
    options.replica_count = 1;
    let mut cluster = LocalCluster::start(options).unwrap();
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
    let endpoints: Vec<(u64, std::net::SocketAddr)> = vec![(1, cluster.client_addrs()[0])];
    let client = Client::new(
        &endpoints,
        ClientOptions {
            op_timeout: Duration::from_millis(500),
            ..ClientOptions::default()
        },
    );
    let path = dir.path().join("history.jsonl");
    let rec = Recorder::create(&path, Clock::start()).unwrap();
    let fresh = AtomicU64::new(100);
    let write = |v: &str| Op::Write {
        key: "k".into(),
        value: v.into(),
    };
    let read = Op::Read {
        key: "k".into(),
        shape: ReadShape::Value,
    };

    // The client learns the cluster, and the write is acknowledged by node 1.
    let mut writer = 0;
    assert_eq!(
        perform(&rec, &client, &mut writer, &fresh, &write("1")).await,
        Completion::Ok("1".into())
    );
    // The node stops answering: the write may have happened (info), the read did not (fail).
    cluster.signal(0, Signal::SIGSTOP);
    let c = perform(&rec, &client, &mut writer, &fresh, &write("2")).await;
    assert!(matches!(c, Completion::Info(_)), "{c:?}");
    assert_eq!(
        writer, 100,
        "a process whose op ended in info goes on under a fresh id"
    );
    let mut reader = 1;
    let c = perform(&rec, &client, &mut reader, &fresh, &read).await;
    assert!(matches!(c, Completion::Fail(_)), "{c:?}");
    assert_eq!(reader, 1, "a failed op keeps its process");
    cluster.signal(0, Signal::SIGCONT);
    let c = perform(&rec, &client, &mut reader, &fresh, &read).await;
    assert!(matches!(c, Completion::Ok(_)), "{c:?}");
    rec.flush().unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let history = checker::read_history(text.as_bytes()).expect("valid checker input");
    let ops = checker::pair_history(&history).expect("pairs");
    assert_eq!(ops.len(), 3, "the failed read is dropped: {text}");
    assert!(
        text.contains(r#""type":"info""#) && text.contains(r#""node":1"#),
        "{text}"
    );
    let report =
        checker::check_linearizability(&checker::Register, &ops, &checker::Budget::default())
            .unwrap();
    assert!(report.verdict.is_valid());
}

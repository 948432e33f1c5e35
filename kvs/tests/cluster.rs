//! Process-level tests: real `kvs` binaries on loopback with free ports, real signals.

mod common;

use common::{election_timeout_max, leader_of, raw_command, raw_exchange, wait_new_leader};
use kvs::api::frame::Frame;
use nix::sys::signal::Signal;
use redis::AsyncCommands;
use std::time::{Duration, Instant};

fn bulk(s: &str) -> Frame {
    Frame::Bulk(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_client_runs_set_get_del_incr_cas_and_follows_moved() {
    let c = common::start(3, 8, 10_000, &[]).await;
    let urls: Vec<String> = c
        .client_addrs()
        .iter()
        .map(|a| format!("redis://{a}"))
        .collect();
    let client = redis::cluster::ClusterClient::new(urls).expect("cluster client");
    let mut conn = client
        .get_async_connection()
        .await
        .expect("the redis crate connects to the cluster");

    for i in 0..40 {
        let () = conn.set(format!("key-{i}"), i).await.expect("SET");
    }
    for i in 0..40 {
        let v: i64 = conn.get(format!("key-{i}")).await.expect("GET");
        assert_eq!(v, i);
    }
    let n: i64 = conn.del("key-0").await.expect("DEL");
    assert_eq!(n, 1);
    let v: Option<String> = conn.get("key-0").await.expect("GET after DEL");
    assert_eq!(v, None);
    for expected in 1..=5 {
        let v: i64 = redis::cmd("INCR")
            .arg("counter")
            .query_async(&mut conn)
            .await
            .expect("INCR");
        assert_eq!(v, expected);
    }
    let swapped: Option<String> = redis::cmd("SET")
        .arg("key-1")
        .arg("one")
        .arg("IFEQ")
        .arg("1")
        .query_async(&mut conn)
        .await
        .expect("CAS that matches");
    assert_eq!(swapped.as_deref(), Some("OK"));
    let refused: Option<String> = redis::cmd("SET")
        .arg("key-1")
        .arg("two")
        .arg("IFEQ")
        .arg("1")
        .query_async(&mut conn)
        .await
        .expect("CAS that does not match");
    assert_eq!(refused, None);
    let v: String = conn.get("key-1").await.expect("GET after CAS");
    assert_eq!(v, "one");

    // A node that does not lead the key's shard answers MOVED with the leader's address.
    let slot = kvs::shard::key_slot(b"key-2").0;
    let shard = {
        let ids: Vec<kvs::raft::NodeId> = c
            .config
            .nodes
            .iter()
            .map(|n| kvs::raft::NodeId(n.id))
            .collect();
        kvs::shard::ShardMap::new(8, 3, &ids)
            .unwrap()
            .shard_of_slot(kvs::shard::Slot(slot))
    };
    let (leader, _) = leader_of(&c, shard.0).await.expect("shard has a leader");
    let other = (leader + 1) % 3;
    let reply = raw_command(c.client_addrs()[other], &["GET", "key-2"]).await;
    let expected = format!("MOVED {slot} {}", c.client_addrs()[leader]);
    assert_eq!(reply, Some(Frame::Error(expected)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_is_replaced_and_restarted_node_catches_up_from_the_log() {
    killed_leader_scenario(100_000, false, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_is_replaced_and_restarted_node_catches_up_from_a_snapshot() {
    // Nodes with a pool of I/O threads, where the driver has a thread of its own: the other
    // way a node runs (by default on this machine each node has one thread, shared with its
    // driver).
    killed_leader_scenario(40, true, Some(2)).await;
}

async fn killed_leader_scenario(
    snapshot_log_entries_max: u64,
    expect_snapshot: bool,
    io_threads: Option<usize>,
) {
    let mut c = common::start_with(3, 1, snapshot_log_entries_max, &[], io_threads).await;
    let own_thread = c.config.io_threads != Some(1);
    for i in 0..3 {
        let log = std::fs::read_to_string(c.log_path(i)).unwrap_or_default();
        let expected = if own_thread {
            "the driver runs on a thread of its own"
        } else {
            "the driver runs on the I/O thread"
        };
        assert!(log.contains(expected), "node {i}'s log lacks {expected:?}");
    }
    let client = common::client(&c);
    let mut acked = std::collections::BTreeMap::new();
    for i in 0..60 {
        let k = format!("k{i}");
        client
            .set(k.as_bytes(), b"before")
            .await
            .expect("write before the kill");
        acked.insert(k, "before".to_string());
    }
    let (old, _) = leader_of(&c, 0).await.expect("a leader");
    c.kill(old);
    let (new, took) = wait_new_leader(&c, 0, old, Duration::from_secs(10))
        .await
        .expect("a new leader is elected");
    assert!(
        took <= election_timeout_max() * 2,
        "a new leader took {took:?}, more than two election timeouts ({:?})",
        election_timeout_max() * 2
    );
    assert_ne!(new, old);
    // The new leader serves: more writes while the old leader is down, overwriting keys so
    // that the log outgrows the state (which is when a group snapshots).
    for i in 0..300 {
        let k = format!("k{}", i % 20);
        let v = format!("after{i}");
        client
            .set(k.as_bytes(), v.as_bytes())
            .await
            .expect("write after the kill");
        acked.insert(k, v);
    }
    c.start_node(old).expect("restart");
    // The restarted node catches up: its applied index reaches the leader's commit.
    let target: u64 = {
        let lines = common::info_raft(&c, new).await.expect("leader answers");
        lines[0].fields["commit"].parse().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(line) = common::info_raft(&c, old)
            .await
            .and_then(|l| l.into_iter().next())
        {
            let applied: u64 = line.fields["applied"].parse().unwrap_or(0);
            if applied >= target {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node did not catch up to {target}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = std::fs::read_to_string(c.log_path(old)).unwrap_or_default();
    assert_eq!(
        log.contains("snapshot installed"),
        expect_snapshot,
        "catch-up path (snapshot installed?) in {}",
        c.log_path(old).display()
    );
    for (k, v) in &acked {
        let got = client.get(k.as_bytes()).await.expect("read");
        assert_eq!(
            got.as_deref(),
            Some(v.as_bytes()),
            "acknowledged write of {k} lost"
        );
    }
    // The restarted node holds every key too.
    let lines = common::info_raft(&c, old)
        .await
        .expect("restarted node answers");
    assert_eq!(lines[0].fields["keys"], acked.len().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_killing_all_nodes() {
    let mut c = common::start(3, 4, 10_000, &[]).await;
    let client = common::client(&c);
    for i in 0..150 {
        client
            .set(format!("key{i}").as_bytes(), format!("v{i}").as_bytes())
            .await
            .expect("write");
    }
    common::restart_all(&mut c).await;
    let client = common::client(&c);
    for i in 0..150 {
        let got = client
            .get(format!("key{i}").as_bytes())
            .await
            .expect("read");
        assert_eq!(
            got.as_deref(),
            Some(format!("v{i}").as_bytes()),
            "key{i} lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_leader_steps_down_and_serves_no_stale_read() {
    let c = common::start(3, 1, 10_000, &[]).await;
    let client = common::client(&c);
    client.set(b"x", b"old").await.expect("first write");
    let (old, old_term) = leader_of(&c, 0).await.expect("a leader");
    c.signal(old, Signal::SIGSTOP);
    let (_new, _) = wait_new_leader(&c, 0, old, Duration::from_secs(10))
        .await
        .expect("the others elect a new leader");
    // The client's slot map still names the paused node; a write sent there could only end
    // "outcome unknown". Learn the new leader first.
    client.refresh_slots_now().await;
    client
        .set(b"x", b"new")
        .await
        .expect("write to the new leader");
    c.signal(old, Signal::SIGCONT);
    // Straight after waking, the old leader must not answer with the overwritten value.
    let addr = c.client_addrs()[old];
    for _ in 0..20 {
        let reply = raw_command(addr, &["GET", "x"]).await;
        assert_ne!(
            reply,
            Some(bulk("old")),
            "stale read served by the deposed leader"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let line = common::info_raft(&c, old)
            .await
            .and_then(|l| l.into_iter().next());
        // Stepped down: no longer leader in the term it was paused in (leader balancing may
        // soon hand it the shard again, in a later term).
        if line.is_some_and(|l| {
            l.fields["role"] != "leader" || l.fields["term"].parse::<u64>().unwrap_or(0) > old_term
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the paused leader did not step down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        client.get(b"x").await.expect("read").as_deref(),
        Some(&b"new"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_errors_and_the_cluster_keeps_serving() {
    let mut c = common::start(3, 1, 10_000, &[]).await;
    let client = common::client(&c);
    client.set(b"keep", b"me").await.expect("write");
    let addr = c.client_addrs()[0];
    let wait = Duration::from_millis(500);

    let reply = raw_exchange(addr, b"*1\r\n$abc\r\n", wait).await;
    assert!(
        reply.starts_with(b"-ERR Protocol error"),
        "got {:?}",
        String::from_utf8_lossy(&reply)
    );
    let reply = raw_exchange(addr, b"*2\r\n$3\r\nFOO\r\n$1\r\nx\r\n", wait).await;
    assert!(
        reply.starts_with(b"-ERR unknown command 'FOO'"),
        "got {:?}",
        String::from_utf8_lossy(&reply)
    );
    let reply = raw_exchange(addr, b"PING\r\n", wait).await;
    assert_eq!(reply, b"+PONG\r\n");
    let reply = raw_exchange(addr, b"*1\r\n$3\r\nGET\r\n", wait).await;
    assert_eq!(
        reply,
        b"-ERR wrong number of arguments for 'get' command\r\n".to_vec()
    );
    // A value over the limit is refused whole, to whichever node.
    let big = "v".repeat(c.config.limits.value_bytes_max + 1);
    let mut request = format!("*3\r\n$3\r\nSET\r\n$4\r\nhuge\r\n${}\r\n", big.len()).into_bytes();
    request.extend_from_slice(big.as_bytes());
    request.extend_from_slice(b"\r\n");
    let reply = raw_exchange(addr, &request, wait).await;
    assert!(
        reply.starts_with(b"-ERR")
            && String::from_utf8_lossy(&reply).contains("exceeds value_bytes_max"),
        "got {:?}",
        String::from_utf8_lossy(&reply)
    );
    // Random bytes, seeded: never a crash.
    let seed: u64 = std::env::var("KVS_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    eprintln!("random-bytes seed {seed} (replay with KVS_TEST_SEED={seed})");
    let mut x = seed | 1;
    for _ in 0..20 {
        let len = 1 + (x % 300) as usize;
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = raw_exchange(addr, &junk, Duration::from_millis(100)).await;
    }
    for i in 0..3 {
        assert!(c.is_running(i), "node {i} died on bad input (seed {seed})");
    }
    assert_eq!(
        client.get(b"keep").await.expect("read").as_deref(),
        Some(&b"me"[..])
    );
    client
        .set(b"still", b"serving")
        .await
        .expect("write after bad input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reads_writes_and_reports_status() {
    let c = common::start(3, 4, 10_000, &[]).await;
    let seed = c.client_addrs()[1].to_string();
    let kvs = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvs"))
            .args(args)
            .args(["--cluster", &seed])
            .output()
            .expect("run kvs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(kvs(&["set", "fruit", "apple"]), (Some(0), "OK\n".into()));
    assert_eq!(kvs(&["get", "fruit"]), (Some(0), "apple\n".into()));
    assert_eq!(
        kvs(&["cas", "fruit", "apple", "pear"]),
        (Some(0), "OK\n".into())
    );
    assert_eq!(
        kvs(&["cas", "fruit", "apple", "plum"]),
        (Some(0), "(nil) value differs\n".into())
    );
    assert_eq!(kvs(&["get", "fruit"]), (Some(0), "pear\n".into()));
    assert_eq!(kvs(&["del", "fruit"]), (Some(0), "(integer) 1\n".into()));
    assert_eq!(kvs(&["get", "fruit"]), (Some(0), "(nil)\n".into()));
    let (code, status) = kvs(&["status"]);
    assert_eq!(code, Some(0), "{status}");
    for shard in 0..4 {
        assert!(
            status
                .lines()
                .any(|l| l.starts_with(&format!("{shard} ")) && !l.contains("none")),
            "shard {shard} has no leader in:\n{status}"
        );
    }
    assert!(status.contains("all 3 nodes reachable"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_peer_port_closes_only_that_connection() {
    let mut c = common::start(3, 1, 10_000, &[]).await;
    let client = common::client(&c);
    client.set(b"a", b"1").await.expect("write");
    let peer = c.config.nodes[0].peer_addr;
    // A frame of a plausible length but nonsense content, then a length over the limit.
    let mut junk = vec![0, 0, 0, 5, 9, 9, 9, 9, 9];
    junk.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    let _ = raw_exchange(peer, &junk, Duration::from_millis(200)).await;
    assert!(c.is_running(0));
    client
        .set(b"a", b"2")
        .await
        .expect("write after junk on a peer port");
    assert_eq!(
        client.get(b"a").await.expect("read").as_deref(),
        Some(&b"2"[..])
    );
    let log = std::fs::read_to_string(c.log_path(0)).unwrap_or_default();
    assert!(log.contains("closing"), "the bad peer frame was not logged");
    let info = raw_command(c.client_addrs()[0], &["INFO", "stats"]).await;
    let Some(Frame::Bulk(text)) = info else {
        panic!("INFO stats failed: {info:?}")
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    assert!(
        !text.contains("peer_decode_errors:0\r\n"),
        "the bad peer frame was not counted: {text}"
    );
}

async fn info_server(c: &common::TestCluster, i: usize) -> String {
    let info = raw_command(c.client_addrs()[i], &["INFO", "server"]).await;
    let Some(Frame::Bulk(text)) = info else {
        panic!("INFO failed: {info:?}")
    };
    String::from_utf8_lossy(&text).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_reads_bug_is_off_by_default_and_loud_when_on() {
    let safe = common::start(1, 1, 10_000, &[]).await;
    let text = info_server(&safe, 0).await;
    assert!(text.contains("planted_bugs:\r\n"), "{text}");
    let log = std::fs::read_to_string(safe.log_path(0)).unwrap_or_default();
    assert!(
        !log.contains("planted bug"),
        "a warning without a bug: {log}"
    );
    drop(safe);
    let unsafe_cluster = common::start(1, 1, 10_000, &["--bug", "stale-reads"]).await;
    let text = info_server(&unsafe_cluster, 0).await;
    assert!(text.contains("planted_bugs:stale-reads\r\n"), "{text}");
    let log = std::fs::read_to_string(unsafe_cluster.log_path(0)).unwrap_or_default();
    assert!(
        log.contains("kvs: WARNING: --bug stale-reads breaks the rule: reads are linearizable"),
        "no loud warning in the log: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_bugs_are_named_on_stderr_and_in_info() {
    let c = common::start(
        1,
        1,
        10_000,
        &["--bug", "vote-twice", "--bug", "skip-fsync"],
    )
    .await;
    let text = info_server(&c, 0).await;
    assert!(
        text.contains("planted_bugs:vote-twice,skip-fsync\r\n"),
        "{text}"
    );
    // The node's stderr goes to its log file.
    let log = std::fs::read_to_string(c.log_path(0)).unwrap_or_default();
    for expected in [
        "kvs: WARNING: planted bugs are on (vote-twice,skip-fsync)",
        "kvs: WARNING: --bug vote-twice breaks the rule: a node grants at most one vote per term",
        "kvs: WARNING: --bug skip-fsync breaks the rule:",
        "planted bug on",
    ] {
        assert!(
            log.contains(expected),
            "{expected:?} missing from the log: {log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_ack_before_commit_answers_writes_no_majority_holds() {
    let c = common::start(3, 1, 10_000, &["--bug", "ack-before-commit"]).await;
    let (leader, _) = leader_of(&c, 0).await.expect("a leader");
    let addr = c.client_addrs()[leader];
    assert_eq!(
        raw_command(addr, &["INCR", "n"]).await,
        Some(Frame::Integer(1))
    );
    assert_eq!(
        raw_command(addr, &["INCR", "n"]).await,
        Some(Frame::Integer(2))
    );
    // Wait until the leader has applied all it committed, so that its copy of the state is in
    // step with its log.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let drained = common::info_raft(&c, leader).await.is_some_and(|lines| {
            lines.iter().filter(|l| l.shard == 0).any(|l| {
                matches!(
                    (l.fields.get("applied"), l.fields.get("commit")),
                    (Some(a), Some(c)) if a == c
                )
            })
        });
        assert!(
            Instant::now() < deadline,
            "the leader never applied what it committed"
        );
        if drained {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &f in &followers {
        c.signal(f, Signal::SIGSTOP);
    }
    // No follower can hold the entry, so it cannot commit; the bug answers it anyway, with the
    // outcome it would have (a correct node answers "outcome unknown" after its write timeout).
    let reply =
        tokio::time::timeout(Duration::from_secs(1), raw_command(addr, &["INCR", "n"])).await;
    for &f in &followers {
        c.signal(f, Signal::SIGCONT);
    }
    assert_eq!(reply.ok().flatten(), Some(Frame::Integer(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_forget_vote_never_writes_the_vote() {
    use kvs::raft::NodeId;
    use kvs::storage::{GroupId, Wal, WalOptions};
    for bug in [false, true] {
        let args: &[&str] = if bug { &["--bug", "forget-vote"] } else { &[] };
        let mut c = common::start(1, 1, 10_000, args).await;
        let (leader, term) = leader_of(&c, 0).await.expect("a leader");
        assert_eq!(leader, 0);
        c.stop_all();
        let dir = c.config.data_dir_for(NodeId(c.config.nodes[0].id));
        let wal = Wal::open(&dir.join("wal"), WalOptions::default()).unwrap();
        let hs = wal.hard_state(GroupId(0));
        assert_eq!(hs.term.0, term, "bug {bug}");
        // The single node voted for itself to lead; with the bug that vote never reached disk,
        // so after a restart it could vote for another candidate in the same term.
        let expected = if bug { None } else { Some(NodeId(1)) };
        assert_eq!(hs.vote, expected, "bug {bug}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let c = common::start(3, 1, 10_000, &[]).await;
    let (leader, _) = leader_of(&c, 0).await.expect("a leader");
    let addr = c.client_addrs()[leader];
    let mut request = Vec::new();
    for i in 0..50 {
        request.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n{i}\r\n",
                i.to_string().len()
            )
            .as_bytes(),
        );
        request.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        request.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n");
    }
    request.extend_from_slice(b"*1\r\n$4\r\nQUIT\r\n");
    let reply = raw_exchange(addr, &request, Duration::from_secs(5)).await;
    let mut expected = Vec::new();
    for i in 0..50 {
        expected.extend_from_slice(b"+OK\r\n");
        expected.extend_from_slice(format!("${}\r\n{i}\r\n", i.to_string().len()).as_bytes());
        expected.extend_from_slice(format!(":{}\r\n", i + 1).as_bytes());
    }
    expected.extend_from_slice(b"+OK\r\n");
    assert_eq!(
        String::from_utf8_lossy(&reply),
        String::from_utf8_lossy(&expected)
    );
}

/// A client that pipelines requests and stops reading: its answers back up (the server stops
/// reading its requests rather than buffering without bound), other clients are served
/// meanwhile, and once it reads again every answer arrives, whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_gets_every_answer_later_and_stalls_nobody() {
    use tokio::io::AsyncWriteExt;
    let c = common::start(3, 1, 10_000, &[]).await;
    let (leader, _) = leader_of(&c, 0).await.expect("a leader");
    let addr = c.client_addrs()[leader];
    let value = "v".repeat(200 * 1024);
    let set = raw_command(addr, &["SET", "big", &value]).await;
    assert_eq!(set, Some(Frame::Simple("OK".into())));

    // 300 GETs of 200 KiB: about 60 MiB of answers, far more than socket buffers hold.
    const GETS: usize = 300;
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = Vec::new();
    for i in 0..GETS {
        request.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
        if i % 50 == 49 {
            request.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        }
    }
    slow.write_all(&request).await.expect("write the pipeline");
    // The server has started answering (the answers are dispatched together, so the rest now
    // wait in its backlog or in the socket buffers).
    tokio::time::timeout(Duration::from_secs(10), slow.peek(&mut [0u8; 1]))
        .await
        .expect("the first answer within 10 s")
        .expect("peek");

    // Others are served while the slow client's answers wait.
    let started = Instant::now();
    for i in 0..20 {
        let key = format!("other-{i}");
        let reply = raw_command(addr, &["SET", &key, "x"]).await;
        assert_eq!(reply, Some(Frame::Simple("OK".into())), "SET {key}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "other clients waited {:?}",
        started.elapsed()
    );

    let read_all = async {
        let mut buf = bytes::BytesMut::new();
        for i in 0..GETS {
            let reply = common::read_frame(&mut slow, &mut buf).await;
            assert_eq!(reply, Some(bulk(&value)), "answer {i}");
            if i % 50 == 49 {
                let pong = common::read_frame(&mut slow, &mut buf).await;
                assert_eq!(
                    pong,
                    Some(Frame::Simple("PONG".into())),
                    "PING after answer {i}"
                );
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .expect("every answer within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_cluster_keeps_its_leaders() {
    // Heartbeats alone must hold leadership: with no client traffic for several election
    // timeouts, no shard may change term (a lost heartbeat path shows up as re-elections).
    let c = common::start(3, 4, 10_000, &[]).await;
    let terms = |lines: Vec<kvs::status::ShardLine>| -> Vec<(u32, String)> {
        lines
            .into_iter()
            .map(|l| (l.shard, l.fields["term"].clone()))
            .collect()
    };
    let mut before = Vec::new();
    for i in 0..3 {
        before.push(terms(common::info_raft(&c, i).await.expect("node answers")));
    }
    tokio::time::sleep(election_timeout_max() * 5).await;
    for (i, b) in before.iter().enumerate() {
        let after = terms(common::info_raft(&c, i).await.expect("node answers"));
        assert_eq!(
            &after, b,
            "node {i}: terms changed while the cluster was idle"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_a_node_down_cleanly_and_it_restarts() {
    let mut c = common::start(3, 2, 10_000, &[]).await;
    let client = common::client(&c);
    client.set(b"before", b"term").await.expect("write");
    c.signal(0, Signal::SIGTERM);
    let status = c
        .wait_exit(0, Duration::from_secs(5))
        .expect("the node exits within 5 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    let log = std::fs::read_to_string(c.log_path(0)).unwrap_or_default();
    assert!(
        log.contains("SIGTERM: shutting down"),
        "no shutdown line in the log"
    );
    c.start_node(0).expect("restart");
    c.wait_ready(Duration::from_secs(20))
        .await
        .expect("ready again");
    assert_eq!(
        client.get(b"before").await.expect("read").as_deref(),
        Some(&b"term"[..])
    );
}

/// A node started with `--exit-with-parent` dies with the process that started it (so no node
/// outlives a killed test or harness), and refuses to start under another parent.
#[test]
fn a_node_exits_with_its_parent() {
    let dir = tempfile::tempdir().unwrap();
    let ports = kvs::local::free_ports(2).unwrap();
    let mut config =
        kvs::config::ClusterConfig::local(1, 1, 1, ports[0], dir.path().join("data")).unwrap();
    config.nodes[0].peer_addr = format!("127.0.0.1:{}", ports[1]).parse().unwrap();
    let config_path = dir.path().join("cluster.yaml");
    std::fs::write(&config_path, config.to_yaml()).unwrap();
    let kvs = env!("CARGO_BIN_EXE_kvs");

    // Under the wrong parent pid it does not start.
    let wrong = std::process::Command::new(kvs)
        .args(["serve", "--config"])
        .arg(&config_path)
        .args(["--id", "1", "--exit-with-parent", "1"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2), "{wrong:?}");

    // A shell starts the node with its own pid, prints the node's pid, and waits.
    let script = format!(
        "'{kvs}' serve --config '{}' --id 1 --exit-with-parent $$ 2>/dev/null & echo $!; wait",
        config_path.display()
    );
    let mut shell = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(shell.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let node: i32 = line.trim().parse().expect("the node's pid");
    let alive = || {
        std::path::Path::new(&format!("/proc/{node}")).exists()
            && !std::fs::read_to_string(format!("/proc/{node}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    };
    // It serves before the parent goes away (so its exit below is not a failed start).
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", ports[0])).is_err() {
        assert!(Instant::now() < deadline, "the node never listened");
        assert!(alive(), "the node exited on its own");
        std::thread::sleep(Duration::from_millis(20));
    }
    shell.kill().unwrap();
    shell.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive() {
        assert!(Instant::now() < deadline, "the node outlived its parent");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_return_to_their_preferred_replicas_after_a_restart() {
    // The placement spreads preferred leaders evenly (two of six shards per node); elections
    // after a crash pile leadership onto the survivors, and leader balancing hands it back
    // once the restarted node has caught up, while writes keep being served.
    let mut c = common::start(3, 6, 10_000, &[]).await;
    let shard_map = c.config.shard_map().expect("shard map");
    let led_by = |lines: &[kvs::status::ShardLine]| -> Vec<u32> {
        lines
            .iter()
            .filter(|l| l.is_leader())
            .map(|l| l.shard)
            .collect()
    };
    let preferred: Vec<Vec<u32>> = (0..3)
        .map(|i| {
            shard_map
                .shards()
                .iter()
                .filter(|s| s.preferred_leader == c.id(i))
                .map(|s| s.id.0)
                .collect()
        })
        .collect();
    // `start` waited for the balance; every node leads its two.
    for (i, mine) in preferred.iter().enumerate() {
        let lines = common::info_raft(&c, i).await.expect("node answers");
        assert_eq!(&led_by(&lines), mine, "node {i} after start");
        assert_eq!(mine.len(), 2, "node {i}'s share of preferred leaders");
    }
    let client = common::client(&c);
    c.kill(0);
    let mut acked = write_keys(&client, "while-down", 100).await;
    let survivors: usize = {
        let mut n = 0;
        for i in 1..3 {
            n += led_by(&common::info_raft(&c, i).await.expect("answers")).len();
        }
        n
    };
    assert_eq!(survivors, 6, "the two survivors lead every shard");
    c.start_node(0).expect("restart");
    // Writes go on while leadership moves back.
    let writer = {
        let client = common::client(&c);
        tokio::spawn(async move { write_keys(&client, "while-balancing", 300).await })
    };
    c.wait_ready(Duration::from_secs(20))
        .await
        .expect("every shard back with its preferred leader");
    acked.extend(writer.await.expect("writer"));
    let lines = common::info_raft(&c, 0).await.expect("node 0 answers");
    assert_eq!(
        led_by(&lines),
        preferred[0],
        "node 0 leads its shards again"
    );
    let handed = (1..3).any(|i| {
        std::fs::read_to_string(c.log_path(i))
            .unwrap_or_default()
            .contains("handing leadership to the shard's preferred replica")
    });
    assert!(handed, "no transfer logged by the survivors");
    for k in &acked {
        assert_eq!(
            client.get(k.as_bytes()).await.expect("read").as_deref(),
            Some(&b"v"[..]),
            "acknowledged write of {k} lost"
        );
    }
}

/// Writes `v` to keys `{prefix}-0` .. `{prefix}-{n-1}`, each acknowledged, and returns the keys.
async fn write_keys(client: &kvs::client::ClusterClient, prefix: &str, n: usize) -> Vec<String> {
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let k = format!("{prefix}-{i}");
        client
            .set(k.as_bytes(), b"v")
            .await
            .unwrap_or_else(|e| panic!("write of {k}: {e}"));
        keys.push(k);
    }
    keys
}

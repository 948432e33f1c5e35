//! Redirections around a leader's death: followers stop sending clients to a leader they no
//! longer hear from (`-TRYAGAIN` instead of `-MOVED`), and the client library waits out an
//! election instead of burning its redirection budget on a dead node.

mod common;

use common::{leader_of, raw_command, wait_new_leader};
use kvs::api::frame::Frame;
use kvs::client::{ClientError, ClientOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One operation of the writer: when it ended, its result, and the node that answered.
struct Record {
    ended: Instant,
    result: Result<Frame, ClientError>,
    node: Option<std::net::SocketAddr>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_leader_makes_no_redirect_storm() {
    // Short pauses, as a harness that wants low latency sets them, and elections of 0.5–1 s
    // (the shape of the default configuration's): 16 redirections spaced by at most 10 ms are
    // spent long before an election ends, if each one counts.
    let options = ClientOptions {
        backoff_min: Duration::from_millis(1),
        backoff_max: Duration::from_millis(10),
        ..ClientOptions::default()
    };
    no_storm_when_the_leader_dies(options, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_leader_makes_no_redirect_storm_with_default_options() {
    no_storm_when_the_leader_dies(ClientOptions::default(), common::ELECTION_TICKS).await;
}

/// A writer loops on one shard's keys; its leader is SIGKILLed. Over the next three seconds
/// (and at least one after the election) no operation may fail on redirections, the only
/// failures allowed are writes caught in flight (outcome unknown), and writes succeed again at
/// the new leader. Elections take `election_ticks` to `2 * election_ticks` ticks of 20 ms.
async fn no_storm_when_the_leader_dies(options: ClientOptions, election_ticks: u32) {
    let mut c = common::start_tuned(3, 1, 10_000, |o| o.election_ticks = election_ticks).await;
    // 5 s per operation, 16 redirections (the library's defaults).
    assert_eq!(options.op_timeout, Duration::from_secs(5));
    assert_eq!(options.redirects_max, 16);
    let client = Arc::new(c.client(options));
    client.set(b"warm", b"up").await.expect("a first write");
    let (old, _) = leader_of(&c, 0).await.expect("a leader");
    let old_addr = c.client_addrs()[old];

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut records = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("k{}", i % 50);
                let value = i.to_string();
                let executed = client
                    .execute(&[b"SET", key.as_bytes(), value.as_bytes()], true)
                    .await;
                records.push(Record {
                    ended: Instant::now(),
                    result: executed.result,
                    node: executed.node,
                });
                i += 1;
                // Not a busy loop: a few hundred operations a second.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            records
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = Instant::now();
    c.kill(old);
    let (new, _) = wait_new_leader(&c, 0, old, Duration::from_secs(10))
        .await
        .expect("a new leader is elected");
    let elected_at = Instant::now();
    // Three seconds after the kill, and at least one more after the election.
    let until = (killed_at + Duration::from_secs(3)).max(elected_at + Duration::from_secs(1));
    tokio::time::sleep_until(until.into()).await;
    stop.store(true, Ordering::Relaxed);
    let records = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the writer stops within one operation timeout")
        .expect("the writer does not panic");

    let after_kill: Vec<&Record> = records.iter().filter(|r| r.ended >= killed_at).collect();
    let storms: Vec<String> = after_kill
        .iter()
        .filter_map(|r| r.result.as_ref().err())
        .map(ToString::to_string)
        .filter(|e| e.contains("too many redirections"))
        .collect();
    assert!(
        storms.is_empty(),
        "{} of {} operations after the kill failed on redirections: {:?}",
        storms.len(),
        after_kill.len(),
        storms.first()
    );
    // The only failures allowed are writes the kill caught in flight ("outcome unknown").
    for r in &after_kill {
        if let Err(e) = &r.result {
            assert!(e.is_unknown(), "a definite failure after the kill: {e}");
        }
    }
    let unknown = after_kill.iter().filter(|r| r.result.is_err()).count();
    assert!(unknown <= 2, "{unknown} writes ended unknown");
    // Writes succeed again after the election, at the new leader.
    let new_addr = c.client_addrs()[new];
    let served_after: Vec<&&Record> = after_kill
        .iter()
        .filter(|r| r.ended > elected_at && r.result.is_ok())
        .collect();
    assert!(
        served_after.len() >= 10,
        "only {} writes succeeded after the election",
        served_after.len()
    );
    assert!(
        served_after.iter().all(|r| r.node == Some(new_addr)),
        "a write after the election was answered by another node than the new leader"
    );
    assert!(
        records.last().is_some_and(|r| r.result.is_ok()),
        "the last write failed"
    );
    assert!(
        after_kill.iter().all(|r| r.node.is_some()),
        "an operation reported no node"
    );
    // Before the kill, the old leader answered.
    assert!(records
        .iter()
        .filter(|r| r.ended < killed_at)
        .all(|r| r.result.is_ok() && r.node == Some(old_addr)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_no_longer_hears_its_leader_says_tryagain_not_moved() {
    // Long elections (1–2 s) leave a wide window between the follower noticing the silence
    // (three heartbeat intervals: 120 ms) and a new leader.
    let mut c = common::start_tuned(3, 1, 10_000, |o| o.election_ticks = 50).await;
    let (old, _) = leader_of(&c, 0).await.expect("a leader");
    let follower = (old + 1) % 3;
    let follower_addr = c.client_addrs()[follower];
    let slot = kvs::shard::key_slot(b"k").0;
    // While the leader is heard from, the follower redirects to it.
    assert_eq!(
        raw_command(follower_addr, &["GET", "k"]).await,
        Some(Frame::Error(format!(
            "MOVED {slot} {}",
            c.client_addrs()[old]
        )))
    );
    c.kill(old);
    let killed_at = Instant::now();
    let mut replies = Vec::new();
    let deadline = killed_at + Duration::from_secs(10);
    loop {
        let reply = raw_command(follower_addr, &["GET", "k"]).await;
        let silent = matches!(&reply, Some(Frame::Error(e))
            if e == "TRYAGAIN shard's leader has not been heard from lately, retry later");
        replies.push(reply);
        if silent {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the follower never said TRYAGAIN; replies: {replies:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Not at once: the silence must last over three heartbeat intervals (of 40 ms; the last
    // heartbeat may have come up to one interval before the kill).
    assert!(
        killed_at.elapsed() >= Duration::from_millis(50),
        "TRYAGAIN after {:?}",
        killed_at.elapsed()
    );
    // Once a new leader is elected, the follower serves or redirects to it.
    let (new, _) = wait_new_leader(&c, 0, old, Duration::from_secs(10))
        .await
        .expect("a new leader");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = raw_command(follower_addr, &["GET", "k"]).await;
        let expected = if new == follower {
            Some(Frame::Null)
        } else {
            Some(Frame::Error(format!(
                "MOVED {slot} {}",
                c.client_addrs()[new]
            )))
        };
        if reply == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the election the follower answered {reply:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

//! The set and counter commands end to end: real `kvs` processes on free ports, driven by the
//! `redis` crate's cluster client (a black-box Redis client) and by `kvs::client`, with Redis's
//! replies and error texts byte for byte, and sets that survive restarts from the log and from
//! snapshots.

mod common;

use common::{leader_of, raw_command, raw_exchange};
use kvs::api::frame::Frame;
use kvs::client::ClientError;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const OVERFLOW: &str = "ERR increment or decrement would overflow";

async fn redis_conn(c: &common::TestCluster) -> redis::cluster_async::ClusterConnection {
    let urls: Vec<String> = c
        .client_addrs()
        .iter()
        .map(|a| format!("redis://{a}"))
        .collect();
    redis::cluster::ClusterClient::new(urls)
        .expect("cluster client")
        .get_async_connection()
        .await
        .expect("the redis crate connects to the cluster")
}

/// Runs one command through the redis crate.
async fn cmd<T: redis::FromRedisValue>(
    conn: &mut redis::cluster_async::ClusterConnection,
    args: &[&str],
) -> redis::RedisResult<T> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query_async(conn).await
}

/// An error reply as the server wrote it (`CODE detail`), from the redis crate's error.
async fn error_text(conn: &mut redis::cluster_async::ClusterConnection, args: &[&str]) -> String {
    match cmd::<redis::Value>(conn, args).await {
        Ok(v) => panic!("{args:?} answered {v:?}, not an error"),
        Err(e) => format!(
            "{} {}",
            e.code().unwrap_or("(no code)"),
            e.detail().unwrap_or("")
        ),
    }
}

/// The client address of the node leading the shard of `key`.
async fn leader_addr_of(c: &common::TestCluster, key: &str) -> std::net::SocketAddr {
    let shard_map = c.config.shard_map().expect("shard map");
    let shard = shard_map.shard_of_slot(kvs::shard::key_slot(key.as_bytes()));
    let (leader, _) = leader_of(c, shard.0).await.expect("the shard has a leader");
    c.client_addrs()[leader]
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sets_and_counters_answer_as_redis_does() {
    let c = common::start(3, 4, 10_000, &[]).await;
    let mut conn = redis_conn(&c).await;

    // Sets: counts of added and removed members, sorted members, an emptied set removed.
    assert_eq!(
        cmd::<i64>(&mut conn, &["SADD", "s", "b", "a", "b"]).await,
        Ok(2)
    );
    assert_eq!(cmd::<i64>(&mut conn, &["SADD", "s", "c", "a"]).await, Ok(1));
    assert_eq!(
        cmd::<Vec<String>>(&mut conn, &["SMEMBERS", "s"]).await,
        Ok(strings(&["a", "b", "c"]))
    );
    assert_eq!(cmd::<i64>(&mut conn, &["SISMEMBER", "s", "a"]).await, Ok(1));
    assert_eq!(cmd::<i64>(&mut conn, &["SISMEMBER", "s", "z"]).await, Ok(0));
    assert_eq!(cmd::<i64>(&mut conn, &["SCARD", "s"]).await, Ok(3));
    assert_eq!(cmd::<i64>(&mut conn, &["SREM", "s", "a", "z"]).await, Ok(1));
    assert_eq!(cmd::<i64>(&mut conn, &["SREM", "s", "b", "c"]).await, Ok(2));
    assert_eq!(cmd::<i64>(&mut conn, &["EXISTS", "s"]).await, Ok(0));
    assert_eq!(
        cmd::<Vec<String>>(&mut conn, &["SMEMBERS", "s"]).await,
        Ok(vec![])
    );
    assert_eq!(cmd::<i64>(&mut conn, &["SCARD", "s"]).await, Ok(0));
    assert_eq!(cmd::<i64>(&mut conn, &["SISMEMBER", "s", "a"]).await, Ok(0));
    assert_eq!(cmd::<i64>(&mut conn, &["SREM", "none", "x"]).await, Ok(0));

    // Counters.
    assert_eq!(cmd::<i64>(&mut conn, &["INCRBY", "n", "5"]).await, Ok(5));
    assert_eq!(cmd::<i64>(&mut conn, &["DECR", "n"]).await, Ok(4));
    assert_eq!(cmd::<i64>(&mut conn, &["DECRBY", "n", "10"]).await, Ok(-6));
    assert_eq!(cmd::<i64>(&mut conn, &["INCRBY", "n", "-4"]).await, Ok(-10));
    assert_eq!(cmd::<i64>(&mut conn, &["DECRBY", "n", "-11"]).await, Ok(1));
    assert_eq!(
        cmd::<String>(&mut conn, &["GET", "n"]).await,
        Ok("1".into())
    );
    assert_eq!(
        error_text(&mut conn, &["INCRBY", "n", "abc"]).await,
        NOT_INTEGER
    );
    assert_eq!(
        error_text(&mut conn, &["DECRBY", "n", "1.5"]).await,
        NOT_INTEGER
    );
    assert_eq!(
        error_text(&mut conn, &["DECRBY", "n", "-9223372036854775808"]).await,
        "ERR decrement would overflow"
    );
    let () = cmd(&mut conn, &["SET", "max", "9223372036854775807"])
        .await
        .unwrap();
    assert_eq!(
        error_text(&mut conn, &["INCRBY", "max", "1"]).await,
        OVERFLOW
    );
    assert_eq!(
        error_text(&mut conn, &["DECRBY", "n", "-9223372036854775807"]).await,
        OVERFLOW
    );
    let () = cmd(&mut conn, &["SET", "min", "-9223372036854775808"])
        .await
        .unwrap();
    assert_eq!(error_text(&mut conn, &["DECR", "min"]).await, OVERFLOW);
    let () = cmd(&mut conn, &["SET", "word", "abc"]).await.unwrap();
    assert_eq!(error_text(&mut conn, &["DECR", "word"]).await, NOT_INTEGER);
    // Failed arithmetic changed nothing.
    assert_eq!(
        cmd::<String>(&mut conn, &["GET", "n"]).await,
        Ok("1".into())
    );
    assert_eq!(
        cmd::<String>(&mut conn, &["GET", "max"]).await,
        Ok("9223372036854775807".into())
    );

    // Types: each command on the other type answers WRONGTYPE and changes nothing.
    let () = cmd(&mut conn, &["SET", "{t}str", "7"]).await.unwrap();
    assert_eq!(cmd::<i64>(&mut conn, &["SADD", "{t}set", "m"]).await, Ok(1));
    for args in [
        &["SADD", "{t}str", "x"][..],
        &["SREM", "{t}str", "7"],
        &["SMEMBERS", "{t}str"],
        &["SISMEMBER", "{t}str", "7"],
        &["SCARD", "{t}str"],
        &["GET", "{t}set"],
        &["INCR", "{t}set"],
        &["INCRBY", "{t}set", "2"],
        &["DECR", "{t}set"],
        &["DECRBY", "{t}set", "2"],
        &["SET", "{t}set", "v", "IFEQ", "m"],
    ] {
        assert_eq!(error_text(&mut conn, args).await, WRONGTYPE, "{args:?}");
    }
    assert_eq!(
        cmd::<String>(&mut conn, &["GET", "{t}str"]).await,
        Ok("7".into())
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut conn, &["SMEMBERS", "{t}set"]).await,
        Ok(strings(&["m"]))
    );
    // MGET answers nil for a set; EXISTS and DEL work on any type; SET NX sees the set, plain
    // SET replaces it.
    assert_eq!(
        cmd::<Vec<Option<String>>>(&mut conn, &["MGET", "{t}set", "{t}str", "{t}none"]).await,
        Ok(vec![None, Some("7".into()), None])
    );
    assert_eq!(
        cmd::<i64>(&mut conn, &["EXISTS", "{t}set", "{t}str", "{t}none"]).await,
        Ok(2)
    );
    assert_eq!(
        cmd::<Option<String>>(&mut conn, &["SET", "{t}set", "x", "NX"]).await,
        Ok(None)
    );
    assert_eq!(
        cmd::<i64>(&mut conn, &["SADD", "{t}gone", "m"]).await,
        Ok(1)
    );
    assert_eq!(cmd::<i64>(&mut conn, &["DEL", "{t}gone"]).await, Ok(1));
    assert_eq!(cmd::<i64>(&mut conn, &["EXISTS", "{t}gone"]).await, Ok(0));
    let () = cmd(&mut conn, &["SET", "{t}set", "now a string"])
        .await
        .unwrap();
    assert_eq!(
        cmd::<String>(&mut conn, &["GET", "{t}set"]).await,
        Ok("now a string".into())
    );
    assert_eq!(
        error_text(&mut conn, &["SADD", "{t}set", "m"]).await,
        WRONGTYPE
    );

    // Arity errors.
    assert_eq!(
        error_text(&mut conn, &["SADD", "s"]).await,
        "ERR wrong number of arguments for 'sadd' command"
    );
    assert_eq!(
        error_text(&mut conn, &["SISMEMBER", "s"]).await,
        "ERR wrong number of arguments for 'sismember' command"
    );

    // Byte for byte at the leader.
    let addr = leader_addr_of(&c, "bytes").await;
    let reply = raw_exchange(
        addr,
        b"*4\r\n$4\r\nSADD\r\n$5\r\nbytes\r\n$1\r\ny\r\n$1\r\nx\r\n\
          *2\r\n$8\r\nSMEMBERS\r\n$5\r\nbytes\r\n\
          *2\r\n$3\r\nGET\r\n$5\r\nbytes\r\n\
          *2\r\n$5\r\nSCARD\r\n$7\r\nmissing\r\n\
          *2\r\n$8\r\nSMEMBERS\r\n$7\r\nmissing\r\n\
          *1\r\n$4\r\nQUIT\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&reply),
        format!(":2\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n-{WRONGTYPE}\r\n:0\r\n*0\r\n+OK\r\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_library_runs_the_set_and_counter_commands() {
    let c = common::start(3, 2, 10_000, &[]).await;
    let client = common::client(&c);
    assert_eq!(client.sadd(b"s", b"a").await, Ok(1));
    assert_eq!(client.sadd(b"s", b"a").await, Ok(0));
    assert_eq!(client.sadd(b"s", b"b").await, Ok(1));
    assert_eq!(
        client.smembers(b"s").await,
        Ok(vec![bytes::Bytes::from("a"), bytes::Bytes::from("b")])
    );
    assert_eq!(client.sismember(b"s", b"b").await, Ok(true));
    assert_eq!(client.sismember(b"s", b"z").await, Ok(false));
    assert_eq!(client.scard(b"s").await, Ok(2));
    assert_eq!(client.srem(b"s", b"a").await, Ok(1));
    assert_eq!(client.srem(b"s", b"a").await, Ok(0));
    assert_eq!(client.incrby(b"n", 10).await, Ok(10));
    assert_eq!(client.decr(b"n").await, Ok(9));
    assert_eq!(client.decrby(b"n", 20).await, Ok(-11));
    assert_eq!(
        client.incr(b"s").await,
        Err(ClientError::Server(WRONGTYPE.into()))
    );
    assert_eq!(
        client.sadd(b"n", b"x").await,
        Err(ClientError::Server(WRONGTYPE.into()))
    );
    assert_eq!(
        client.decrby(b"n", i64::MIN).await,
        Err(ClientError::Server("ERR decrement would overflow".into()))
    );
    assert_eq!(client.smembers(b"none").await, Ok(vec![]));
    // `execute` says which node answered: the leader of the key's shard.
    let executed = client.execute(&[b"SCARD", b"s"], false).await;
    assert_eq!(executed.result, Ok(Frame::Integer(1)));
    assert_eq!(executed.node, Some(leader_addr_of(&c, "s").await));
}

/// Waits until node `i` has applied everything its shard (the only one) had committed at the
/// leader when called.
async fn wait_caught_up(c: &common::TestCluster, i: usize, leader: usize) {
    let target: u64 = common::info_raft(c, leader).await.expect("leader answers")[0].fields
        ["commit"]
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let applied: u64 = common::info_raft(c, i)
            .await
            .and_then(|l| l.into_iter().next())
            .map_or(0, |l| l.fields["applied"].parse().unwrap_or(0));
        if applied >= target {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {i} did not catch up to {target}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Applies SADD/SREM to the model and the cluster alike.
struct Model {
    sets: BTreeMap<String, BTreeSet<String>>,
    counters: BTreeMap<String, i64>,
}

impl Model {
    async fn sadd(&mut self, conn: &mut redis::cluster_async::ClusterConnection, k: &str, m: &str) {
        let added: i64 = cmd(conn, &["SADD", k, m]).await.expect("SADD");
        let set = self.sets.entry(k.to_string()).or_default();
        assert_eq!(added, i64::from(set.insert(m.to_string())), "SADD {k} {m}");
    }

    async fn srem(&mut self, conn: &mut redis::cluster_async::ClusterConnection, k: &str, m: &str) {
        let removed: i64 = cmd(conn, &["SREM", k, m]).await.expect("SREM");
        let set = self.sets.entry(k.to_string()).or_default();
        assert_eq!(removed, i64::from(set.remove(m)), "SREM {k} {m}");
        if set.is_empty() {
            self.sets.remove(k);
        }
    }

    async fn incrby(
        &mut self,
        conn: &mut redis::cluster_async::ClusterConnection,
        k: &str,
        by: i64,
    ) {
        let got: i64 = cmd(conn, &["INCRBY", k, &by.to_string()])
            .await
            .expect("INCRBY");
        let n = self.counters.entry(k.to_string()).or_default();
        *n += by;
        assert_eq!(got, *n, "INCRBY {k} {by}");
    }

    /// A burst of writes that churns members (so the log outgrows the state).
    async fn churn(&mut self, conn: &mut redis::cluster_async::ClusterConnection, round: usize) {
        for i in 0..30 {
            let k = format!("set-{}", i % 6);
            let m = format!("m{}", (i * 7 + round) % 9);
            if (i + round).is_multiple_of(3) {
                self.srem(conn, &k, &m).await;
            } else {
                self.sadd(conn, &k, &m).await;
            }
        }
        self.incrby(conn, "count", round as i64 + 1).await;
        self.incrby(conn, "count", -2).await;
    }

    fn key_count(&self) -> usize {
        self.sets.len() + self.counters.len()
    }

    async fn check(&self, conn: &mut redis::cluster_async::ClusterConnection, when: &str) {
        for i in 0..6 {
            let k = format!("set-{i}");
            let want: Vec<String> = self
                .sets
                .get(&k)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            let got: Vec<String> = cmd(conn, &["SMEMBERS", &k]).await.expect("SMEMBERS");
            assert_eq!(got, want, "{k} {when}");
            let card: i64 = cmd(conn, &["SCARD", &k]).await.expect("SCARD");
            assert_eq!(card as usize, want.len(), "SCARD {k} {when}");
        }
        for (k, n) in &self.counters {
            let got: i64 = cmd(conn, &["GET", k]).await.expect("GET");
            assert_eq!(got, *n, "{k} {when}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sets_survive_restarts_from_the_log_and_from_snapshots() {
    // A group snapshots once its log holds more than 20 entries past the last snapshot.
    let mut c = common::start(3, 1, 20, &[]).await;
    let mut conn = redis_conn(&c).await;
    let mut model = Model {
        sets: BTreeMap::new(),
        counters: BTreeMap::new(),
    };
    model.churn(&mut conn, 0).await;
    model.check(&mut conn, "before any restart").await;

    // A follower misses many writes; the leader compacts its log past them, so the follower
    // comes back through a snapshot (of sets) sent by the leader.
    let (leader, _) = leader_of(&c, 0).await.expect("a leader");
    let follower = (leader + 1) % 3;
    c.kill(follower);
    for round in 1..5 {
        model.churn(&mut conn, round).await;
    }
    c.start_node(follower).expect("restart the follower");
    wait_caught_up(&c, follower, leader).await;
    let log = std::fs::read_to_string(c.log_path(follower)).unwrap_or_default();
    assert!(
        log.contains("snapshot installed"),
        "the follower did not catch up through a snapshot"
    );
    let keys = common::info_raft(&c, follower)
        .await
        .expect("follower answers")[0]
        .fields["keys"]
        .clone();
    assert_eq!(keys, model.key_count().to_string(), "keys on the follower");
    let leader_log = std::fs::read_to_string(c.log_path(leader)).unwrap_or_default();
    assert!(
        leader_log.contains("snapshot taken"),
        "no snapshot taken by the leader"
    );

    // A few writes after the last snapshot, so each node's restart replays a log tail on top
    // of its snapshot; then every node restarts from its own disk.
    model.sadd(&mut conn, "set-0", "tail").await;
    model.srem(&mut conn, "set-1", "m1").await;
    model.incrby(&mut conn, "count", 100).await;
    for i in 0..3 {
        wait_caught_up(&c, i, leader).await;
    }
    drop(conn);
    common::restart_all(&mut c).await;
    let mut conn = redis_conn(&c).await;
    model.check(&mut conn, "after every node restarted").await;
    // Every replica holds the sets again.
    let (leader, _) = leader_of(&c, 0).await.expect("a leader");
    for i in 0..3 {
        wait_caught_up(&c, i, leader).await;
        let keys = common::info_raft(&c, i).await.expect("node answers")[0].fields["keys"].clone();
        assert_eq!(keys, model.key_count().to_string(), "keys on node {i}");
    }
    // And they are still sets, typed.
    assert_eq!(error_text(&mut conn, &["GET", "set-0"]).await, WRONGTYPE);
    assert_eq!(
        raw_command(
            leader_addr_of(&c, "set-0").await,
            &["SISMEMBER", "set-0", "tail"]
        )
        .await,
        Some(Frame::Integer(1))
    );
}

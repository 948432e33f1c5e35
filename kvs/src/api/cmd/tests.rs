use super::*;
use crate::api::FrameLimits;
use bytes::BytesMut;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn parse(args: &[&str]) -> Result<Request, CmdError> {
    Request::parse(Frame::command(args))
}

fn err(args: &[&str]) -> String {
    parse(args).unwrap_err().to_string()
}

#[test]
fn parses_every_command_case_insensitively() {
    let cases: Vec<(&[&str], Request)> = vec![
        (&["PING"], Request::Ping(None)),
        (&["ping", "hi"], Request::Ping(Some(b("hi")))),
        (&["EcHo", "x"], Request::Echo(b("x"))),
        (&["get", "k"], Request::Get(b("k"))),
        (
            &["set", "k", "v"],
            Request::Set(SetArgs {
                key: b("k"),
                value: b("v"),
                condition: SetCondition::Always,
            }),
        ),
        (
            &["SET", "k", "v", "nx"],
            Request::Set(SetArgs {
                key: b("k"),
                value: b("v"),
                condition: SetCondition::Nx,
            }),
        ),
        (
            &["SET", "k", "v", "XX", "xx"],
            Request::Set(SetArgs {
                key: b("k"),
                value: b("v"),
                condition: SetCondition::Xx,
            }),
        ),
        (
            &["SET", "k", "v", "IfEq", "old"],
            Request::Set(SetArgs {
                key: b("k"),
                value: b("v"),
                condition: SetCondition::IfEq(b("old")),
            }),
        ),
        (&["DEL", "a", "b"], Request::Del(vec![b("a"), b("b")])),
        (&["exists", "a"], Request::Exists(vec![b("a")])),
        (&["INCR", "n"], Request::Incr(b("n"))),
        (
            &["incrBY", "n", "-5"],
            Request::IncrBy {
                key: b("n"),
                delta: -5,
            },
        ),
        (&["DECR", "n"], Request::Decr(b("n"))),
        (
            &["decrby", "n", "9223372036854775807"],
            Request::DecrBy {
                key: b("n"),
                delta: i64::MAX,
            },
        ),
        (
            &["SADD", "s", "a", "b", "a"],
            Request::SAdd {
                key: b("s"),
                members: vec![b("a"), b("b"), b("a")],
            },
        ),
        (
            &["srem", "s", "a"],
            Request::SRem {
                key: b("s"),
                members: vec![b("a")],
            },
        ),
        (&["SMembers", "s"], Request::SMembers(b("s"))),
        (
            &["sismember", "s", "a"],
            Request::SIsMember {
                key: b("s"),
                member: b("a"),
            },
        ),
        (&["SCARD", "s"], Request::SCard(b("s"))),
        (&["MGET", "a", "b"], Request::MGet(vec![b("a"), b("b")])),
        (
            &["MSET", "a", "1", "b", "2"],
            Request::MSet(vec![(b("a"), b("1")), (b("b"), b("2"))]),
        ),
        (&["DBSIZE"], Request::DbSize),
        (&["INFO"], Request::Info(None)),
        (&["INFO", "Raft"], Request::Info(Some("raft".into()))),
        (
            &["CLUSTER", "slots"],
            Request::Cluster(ClusterRequest::Slots),
        ),
        (
            &["cluster", "SHARDS"],
            Request::Cluster(ClusterRequest::Shards),
        ),
        (
            &["cluster", "nodes"],
            Request::Cluster(ClusterRequest::Nodes),
        ),
        (&["cluster", "info"], Request::Cluster(ClusterRequest::Info)),
        (
            &["cluster", "keyslot", "foo"],
            Request::Cluster(ClusterRequest::KeySlot(b("foo"))),
        ),
        (&["QUIT"], Request::Quit),
        (&["quit", "extra"], Request::Quit),
    ];
    for (args, want) in cases {
        let got = parse(args).unwrap();
        assert_eq!(got, want, "{args:?}");
        // The client-side encoding parses back to the same request.
        assert_eq!(Request::parse(got.to_frame()).unwrap(), want);
    }
}

#[test]
fn client_encoding_is_exact() {
    let req = parse(&["set", "k", "v", "ifeq", "o"]).unwrap();
    assert_eq!(
        &req.to_frame().to_bytes()[..],
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$4\r\nIFEQ\r\n$1\r\no\r\n"
    );
    let req = parse(&["sadd", "s", "a", "b"]).unwrap();
    assert_eq!(
        &req.to_frame().to_bytes()[..],
        b"*4\r\n$4\r\nSADD\r\n$1\r\ns\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
    let req = parse(&["decrby", "n", "-12"]).unwrap();
    assert_eq!(
        &req.to_frame().to_bytes()[..],
        b"*3\r\n$6\r\nDECRBY\r\n$1\r\nn\r\n$3\r\n-12\r\n"
    );
}

#[test]
fn error_texts_are_redis_like() {
    assert_eq!(
        err(&["foo", "a", "b"]),
        "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
    );
    assert_eq!(
        err(&["foo"]),
        "ERR unknown command 'foo', with args beginning with: "
    );
    assert_eq!(
        err(&["get"]),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        err(&["GET", "a", "b"]),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        err(&["ping", "a", "b"]),
        "ERR wrong number of arguments for 'ping' command"
    );
    assert_eq!(
        err(&["echo"]),
        "ERR wrong number of arguments for 'echo' command"
    );
    assert_eq!(
        err(&["set", "k"]),
        "ERR wrong number of arguments for 'set' command"
    );
    assert_eq!(
        err(&["del"]),
        "ERR wrong number of arguments for 'del' command"
    );
    assert_eq!(
        err(&["exists"]),
        "ERR wrong number of arguments for 'exists' command"
    );
    assert_eq!(
        err(&["incr", "a", "b"]),
        "ERR wrong number of arguments for 'incr' command"
    );
    assert_eq!(
        err(&["mget"]),
        "ERR wrong number of arguments for 'mget' command"
    );
    for (args, name) in [
        (&["incrby", "n"][..], "incrby"),
        (&["incrby", "n", "1", "2"], "incrby"),
        (&["decr"], "decr"),
        (&["decr", "a", "b"], "decr"),
        (&["decrby", "n"], "decrby"),
        (&["decrby", "n", "1", "2"], "decrby"),
        (&["sadd"], "sadd"),
        (&["sadd", "s"], "sadd"),
        (&["srem", "s"], "srem"),
        (&["smembers"], "smembers"),
        (&["smembers", "a", "b"], "smembers"),
        (&["sismember", "s"], "sismember"),
        (&["sismember", "s", "a", "b"], "sismember"),
        (&["scard"], "scard"),
        (&["scard", "a", "b"], "scard"),
    ] {
        assert_eq!(
            err(args),
            format!("ERR wrong number of arguments for '{name}' command"),
            "{args:?}"
        );
    }
    // Increments are checked before any key is looked at, with Redis's texts.
    for bad in [
        "x",
        "1.5",
        "",
        " 1",
        "+1",
        "01",
        "-0",
        "9223372036854775808",
    ] {
        assert_eq!(
            err(&["incrby", "n", bad]),
            "ERR value is not an integer or out of range",
            "{bad:?}"
        );
        assert_eq!(
            err(&["decrby", "n", bad]),
            "ERR value is not an integer or out of range",
            "{bad:?}"
        );
    }
    assert_eq!(
        err(&["decrby", "n", "-9223372036854775808"]),
        "ERR decrement would overflow"
    );
    assert_eq!(
        parse(&["incrby", "n", "-9223372036854775808"]),
        Ok(Request::IncrBy {
            key: b("n"),
            delta: i64::MIN
        })
    );
    assert_eq!(
        err(&["mset", "a"]),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(
        err(&["mset", "a", "1", "b"]),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(
        err(&["dbsize", "x"]),
        "ERR wrong number of arguments for 'dbsize' command"
    );
    assert_eq!(
        err(&["info", "a", "b"]),
        "ERR wrong number of arguments for 'info' command"
    );
    assert_eq!(
        err(&["cluster"]),
        "ERR wrong number of arguments for 'cluster' command"
    );
    assert_eq!(
        err(&["cluster", "keyslot"]),
        "ERR wrong number of arguments for 'cluster|keyslot' command"
    );
    assert_eq!(
        err(&["cluster", "slots", "x"]),
        "ERR wrong number of arguments for 'cluster|slots' command"
    );
    assert_eq!(
        err(&["cluster", "meet"]),
        "ERR unknown subcommand 'meet'. Try CLUSTER HELP."
    );
    for bad in [
        &["set", "k", "v", "nx", "xx"][..],
        &["set", "k", "v", "xx", "nx"],
        &["set", "k", "v", "ifeq"],
        &["set", "k", "v", "ifeq", "a", "ifeq", "a"],
        &["set", "k", "v", "nx", "ifeq", "a"],
        &["set", "k", "v", "get"],
        &["set", "k", "v", "ex", "10"],
    ] {
        assert_eq!(err(bad), "ERR syntax error", "{bad:?}");
    }
    assert_eq!(
        Request::parse(Frame::Array(vec![])).unwrap_err(),
        CmdError::Empty
    );
    assert_eq!(
        Request::parse(Frame::Array(vec![Frame::bulk("GET"), Frame::Integer(1)]))
            .unwrap_err()
            .to_string(),
        "ERR Protocol error: expected an array of bulk strings"
    );
    assert_eq!(
        CmdError::Syntax.to_frame().to_bytes(),
        Bytes::from_static(b"-ERR syntax error\r\n")
    );
}

#[test]
fn unknown_command_quotes_at_most_128_bytes_of_args() {
    let long = "x".repeat(200);
    let text = err(&["nope", &long, "more"]);
    assert_eq!(
        text,
        format!(
            "ERR unknown command 'nope', with args beginning with: '{}' ",
            "x".repeat(128)
        )
    );
}

#[test]
fn keys_slot_and_write_classification() {
    let req = parse(&["MSET", "{u}a", "1", "{u}b", "2"]).unwrap();
    let keys: Vec<&Bytes> = req.keys().collect();
    assert_eq!(keys, vec![&b("{u}a"), &b("{u}b")]);
    assert_eq!(req.slot(), Ok(Some(key_slot(b"u"))));
    assert!(req.is_write());
    assert_eq!(
        parse(&["MGET", "foo", "bar"]).unwrap().slot(),
        Err(CmdError::CrossSlot)
    );
    assert_eq!(
        CmdError::CrossSlot.to_string(),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    assert_eq!(
        parse(&["GET", "foo"]).unwrap().slot(),
        Ok(Some(Slot(12182)))
    );
    assert_eq!(parse(&["PING"]).unwrap().slot(), Ok(None));
    assert_eq!(
        parse(&["CLUSTER", "KEYSLOT", "foo"])
            .unwrap()
            .keys()
            .count(),
        0
    );
    for (args, write, read) in [
        (&["SET", "k", "v"][..], true, false),
        (&["DEL", "k"], true, false),
        (&["INCR", "k"], true, false),
        (&["INCRBY", "k", "2"], true, false),
        (&["DECR", "k"], true, false),
        (&["DECRBY", "k", "2"], true, false),
        (&["MSET", "k", "v"], true, false),
        (&["SADD", "k", "m"], true, false),
        (&["SREM", "k", "m"], true, false),
        (&["GET", "k"], false, true),
        (&["MGET", "k"], false, true),
        (&["EXISTS", "k"], false, true),
        (&["SMEMBERS", "k"], false, true),
        (&["SISMEMBER", "k", "m"], false, true),
        (&["SCARD", "k"], false, true),
        (&["PING"], false, false),
        (&["INFO"], false, false),
    ] {
        let req = parse(args).unwrap();
        assert_eq!(req.is_write(), write, "{args:?}");
        assert_eq!(req.to_command().is_some(), write, "{args:?}");
        assert_eq!(req.is_read(), read, "{args:?}");
        assert_eq!(req.to_query().is_some(), read, "{args:?}");
        if write || read {
            // Every keyed command routes by its key.
            assert_eq!(req.slot(), Ok(Some(key_slot(b"k"))), "{args:?}");
        }
    }
    // DECR and DECRBY are logged as INCRBY of the negated amount.
    for (args, delta) in [
        (&["INCRBY", "k", "7"][..], 7),
        (&["DECR", "k"], -1),
        (&["DECRBY", "k", "7"], -7),
        (&["DECRBY", "k", "-9223372036854775807"], i64::MAX),
    ] {
        assert_eq!(
            parse(args).unwrap().to_command(),
            Some(Command::IncrBy { key: b("k"), delta }),
            "{args:?}"
        );
    }
    assert_eq!(
        parse(&["SADD", "s", "a", "b"]).unwrap().to_command(),
        Some(Command::SAdd {
            key: b("s"),
            members: vec![b("a"), b("b")]
        })
    );
    assert_eq!(
        parse(&["SREM", "s", "a"]).unwrap().to_command(),
        Some(Command::SRem {
            key: b("s"),
            members: vec![b("a")]
        })
    );
    assert_eq!(
        parse(&["SET", "k", "v", "NX"]).unwrap().to_command(),
        Some(Command::Set {
            key: b("k"),
            value: b("v"),
            condition: SetCondition::Nx
        })
    );
}

#[test]
fn value_limit_and_outcome_replies() {
    let req = parse(&["SET", "k", "12345", "IFEQ", "123456"]).unwrap();
    assert_eq!(req.check_value_bytes(6), Ok(()));
    assert_eq!(
        req.check_value_bytes(5),
        Err(CmdError::ValueTooLarge { len: 6, max: 5 })
    );
    let req = parse(&["SADD", "s", "12", "123456", "1"]).unwrap();
    assert_eq!(req.check_value_bytes(6), Ok(()));
    assert_eq!(
        req.check_value_bytes(5),
        Err(CmdError::ValueTooLarge { len: 6, max: 5 })
    );
    assert_eq!(
        Frame::from(Outcome::Bulk(b("v"))).to_bytes(),
        &b"$1\r\nv\r\n"[..]
    );
    assert_eq!(
        Frame::from(Outcome::Array(vec![Some(b("a")), None])).to_bytes(),
        &b"*2\r\n$1\r\na\r\n$-1\r\n"[..]
    );
    assert_eq!(
        Frame::from(Outcome::Array(vec![])).to_bytes(),
        &b"*0\r\n"[..]
    );
    assert_eq!(
        CmdError::ValueTooLarge { len: 6, max: 5 }.to_string(),
        "ERR value of 6 bytes exceeds value_bytes_max 5"
    );
    assert_eq!(Frame::from(Outcome::Ok), Frame::Simple("OK".into()));
    assert_eq!(Frame::from(Outcome::Nil), Frame::Null);
    assert_eq!(Frame::from(Outcome::Integer(3)), Frame::Integer(3));
    assert_eq!(
        Frame::from(Outcome::Error("ERR x".into())),
        Frame::Error("ERR x".into())
    );
}

#[test]
fn inline_commands_parse_too() {
    let mut buf = BytesMut::from(&b"set k \"a b\" nx\r\n"[..]);
    let frame = Frame::parse(&mut buf, &FrameLimits::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        Request::parse(frame).unwrap(),
        Request::Set(SetArgs {
            key: b("k"),
            value: b("a b"),
            condition: SetCondition::Nx,
        })
    );
}

mod cluster_replies {
    use super::super::cluster::{keyslot_reply, parse_shards_reply, redis_node_id, ClusterView};
    use crate::api::Frame;
    use crate::raft::types::NodeId;
    use crate::shard::ShardMap;
    use crate::shard::{Slot, SlotRange};
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    fn setup() -> (ShardMap, BTreeMap<NodeId, SocketAddr>) {
        let nodes = [NodeId(1), NodeId(2), NodeId(3)];
        let map = ShardMap::new(2, 2, &nodes).unwrap();
        let addrs = nodes
            .iter()
            .map(|n| {
                let addr: SocketAddr = format!("127.0.0.1:{}", 7000 + n.0 - 1).parse().unwrap();
                (*n, addr)
            })
            .collect();
        (map, addrs)
    }

    fn node_entry(port: i64, id: u64) -> Frame {
        Frame::Array(vec![
            Frame::bulk("127.0.0.1"),
            Frame::Integer(port),
            Frame::bulk(format!("{id:040x}")),
        ])
    }

    #[test]
    fn slots_reply_reports_known_leaders_first() {
        let (map, addrs) = setup();
        // Shard 0: replicas n1, n2 (preferred n1). Shard 1: replicas n3, n1 (preferred n3).
        let leaders = [Some(NodeId(2)), None];
        let view = ClusterView {
            shard_map: &map,
            leaders: &leaders,
            client_addrs: &addrs,
            myself: NodeId(1),
        };
        assert_eq!(
            view.slots_reply(),
            Frame::Array(vec![
                Frame::Array(vec![
                    Frame::Integer(0),
                    Frame::Integer(8191),
                    node_entry(7001, 2),
                    node_entry(7000, 1),
                ]),
                Frame::Array(vec![
                    Frame::Integer(8192),
                    Frame::Integer(16383),
                    node_entry(7002, 3),
                    node_entry(7000, 1),
                ]),
            ])
        );
        assert_eq!(redis_node_id(NodeId(10)), format!("{}a", "0".repeat(39)));
        assert_eq!(keyslot_reply(b"foo"), Frame::Integer(12182));
    }

    #[test]
    fn nodes_info_and_shards_replies() {
        let (map, addrs) = setup();
        let leaders = [Some(NodeId(2)), None];
        let view = ClusterView {
            shard_map: &map,
            leaders: &leaders,
            client_addrs: &addrs,
            myself: NodeId(1),
        };
        let id = |n: u64| format!("{n:040x}");
        let want = format!(
            "{} 127.0.0.1:7000@0 myself,master - 0 0 0 connected\n\
             {} 127.0.0.1:7001@0 master - 0 0 0 connected 0-8191\n\
             {} 127.0.0.1:7002@0 master - 0 0 0 connected 8192-16383\n",
            id(1),
            id(2),
            id(3)
        );
        assert_eq!(view.nodes_reply(), Frame::bulk(want));
        let Frame::Bulk(info) = view.info_reply() else {
            panic!("bulk expected")
        };
        let info = String::from_utf8(info.to_vec()).unwrap();
        assert!(
            info.starts_with("cluster_enabled:1\r\ncluster_state:fail\r\n"),
            "{info}"
        );
        assert!(info.contains("\r\ncluster_slots_ok:8192\r\ncluster_slots_pfail:8192\r\n"));
        assert!(info.contains("\r\ncluster_known_nodes:3\r\ncluster_size:2\r\n"));
        let all_led = [Some(NodeId(1)), Some(NodeId(3))];
        let view = ClusterView {
            leaders: &all_led,
            ..view
        };
        let Frame::Bulk(info) = view.info_reply() else {
            panic!("bulk expected")
        };
        assert!(String::from_utf8_lossy(&info).contains("cluster_state:ok\r\n"));

        let Frame::Array(shards) = view.shards_reply() else {
            panic!("array expected")
        };
        assert_eq!(shards.len(), 2);
        let Frame::Array(first) = &shards[0] else {
            panic!("array expected")
        };
        assert_eq!(first[0], Frame::bulk("slots"));
        assert_eq!(
            first[1],
            Frame::Array(vec![Frame::Integer(0), Frame::Integer(8191)])
        );
        let Frame::Array(nodes) = &first[3] else {
            panic!("array expected")
        };
        assert_eq!(
            nodes[0],
            Frame::Array(vec![
                Frame::bulk("id"),
                Frame::bulk(id(1)),
                Frame::bulk("port"),
                Frame::Integer(7000),
                Frame::bulk("ip"),
                Frame::bulk("127.0.0.1"),
                Frame::bulk("endpoint"),
                Frame::bulk("127.0.0.1"),
                Frame::bulk("role"),
                Frame::bulk("master"),
                Frame::bulk("replication-offset"),
                Frame::Integer(0),
                Frame::bulk("health"),
                Frame::bulk("online"),
            ])
        );
        assert_eq!(nodes.len(), 2);

        // The client-side parser reads back what the builder wrote.
        let routes = parse_shards_reply(&view.shards_reply()).unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(
            routes[1].slots,
            vec![SlotRange {
                start: Slot(8192),
                end: Slot(16383)
            }]
        );
        let master = routes[1].master().unwrap();
        assert_eq!(master.addr(), "127.0.0.1:7002");
        assert_eq!(master.id, id(3));
        assert_eq!(
            routes[1]
                .nodes
                .iter()
                .map(|n| n.is_master)
                .collect::<Vec<_>>(),
            vec![true, false]
        );
        assert!(parse_shards_reply(&Frame::Integer(1)).is_err());
        assert!(parse_shards_reply(&Frame::Array(vec![Frame::Array(vec![
            Frame::bulk("slots"),
            Frame::Array(vec![Frame::Integer(5), Frame::Integer(2)]),
        ])]))
        .is_err());
    }
}

#[test]
fn read_replies_from_a_state_machine() {
    use crate::raft::types::LogIndex;
    let mut sm = StateMachine::new();
    sm.apply(
        LogIndex(1),
        &Command::MSet {
            pairs: vec![(b("a"), b("1")), (b("b"), b("2"))],
        },
    );
    let reply = |args: &[&str]| parse(args).unwrap().read_reply(&sm);
    assert_eq!(reply(&["GET", "a"]), Some(Frame::bulk("1")));
    assert_eq!(reply(&["GET", "zz"]), Some(Frame::Null));
    assert_eq!(reply(&["EXISTS", "a", "a", "zz"]), Some(Frame::Integer(2)));
    assert_eq!(
        reply(&["MGET", "a", "zz", "b"]),
        Some(Frame::Array(vec![
            Frame::bulk("1"),
            Frame::Null,
            Frame::bulk("2")
        ]))
    );
    assert_eq!(reply(&["SET", "a", "x"]), None);
    sm.apply(
        LogIndex(2),
        &Command::SAdd {
            key: b("s"),
            members: vec![b("y"), b("x")],
        },
    );
    let reply = |args: &[&str]| parse(args).unwrap().read_reply(&sm);
    let wrong = Some(Frame::Error(
        "WRONGTYPE Operation against a key holding the wrong kind of value".into(),
    ));
    assert_eq!(
        reply(&["SMEMBERS", "s"]),
        Some(Frame::Array(vec![Frame::bulk("x"), Frame::bulk("y")]))
    );
    assert_eq!(reply(&["SMEMBERS", "none"]), Some(Frame::Array(vec![])));
    assert_eq!(reply(&["SISMEMBER", "s", "x"]), Some(Frame::Integer(1)));
    assert_eq!(reply(&["SISMEMBER", "s", "z"]), Some(Frame::Integer(0)));
    assert_eq!(reply(&["SCARD", "s"]), Some(Frame::Integer(2)));
    assert_eq!(reply(&["SCARD", "none"]), Some(Frame::Integer(0)));
    assert_eq!(reply(&["GET", "s"]), wrong);
    assert_eq!(reply(&["SMEMBERS", "a"]), wrong);
    assert_eq!(reply(&["SISMEMBER", "a", "1"]), wrong);
    assert_eq!(reply(&["SCARD", "a"]), wrong);
    assert_eq!(
        reply(&["MGET", "s", "a"]),
        Some(Frame::Array(vec![Frame::Null, Frame::bulk("1")]))
    );
    assert_eq!(reply(&["EXISTS", "s", "a"]), Some(Frame::Integer(2)));
    assert!(parse(&["MGET", "a"]).unwrap().is_read());
    assert!(!parse(&["SET", "a", "x"]).unwrap().is_read());
    assert_eq!(ping::reply(None).to_bytes(), &b"+PONG\r\n"[..]);
    assert_eq!(ping::reply(Some(&b("hi"))), Frame::bulk("hi"));
    assert_eq!(echo::reply(&b("x")), Frame::bulk("x"));
    assert_eq!(dbsize::reply(7), Frame::Integer(7));
    assert_eq!(quit::reply().to_bytes(), &b"+OK\r\n"[..]);
}

#[test]
fn info_reply_layout() {
    use crate::raft::types::{LogIndex, NodeId, Role, Term};
    use crate::shard::ShardId;
    let node = info::NodeStatus {
        node: NodeId(2),
        version: "0.1.0",
        uptime_secs: 5,
        connected_clients: 3,
        planted_bugs: crate::bugs::BugSet::none(),
    };
    let shards = [
        info::ShardStatus {
            shard: ShardId(0),
            role: Role::Leader,
            term: Term(4),
            leader: Some(NodeId(2)),
            commit: LogIndex(10),
            applied: LogIndex(9),
            key_count: 7,
        },
        info::ShardStatus {
            shard: ShardId(3),
            role: Role::Candidate,
            term: Term(6),
            leader: None,
            commit: LogIndex(1),
            applied: LogIndex(1),
            key_count: 2,
        },
    ];
    assert_eq!(
        info::reply(Some("raft"), &node, &shards),
        Frame::bulk(
            "# Raft\r\n\
             shard_0:role=leader,term=4,leader=2,commit=10,applied=9,keys=7\r\n\
             shard_3:role=candidate,term=6,leader=0,commit=1,applied=1,keys=2\r\n"
        )
    );
    assert_eq!(
        info::reply(None, &node, &shards),
        Frame::bulk(
            "# Server\r\nkvs_version:0.1.0\r\nnode_id:2\r\nuptime_in_seconds:5\r\nplanted_bugs:\r\n\
             \r\n# Clients\r\nconnected_clients:3\r\n\
             \r\n# Raft\r\n\
             shard_0:role=leader,term=4,leader=2,commit=10,applied=9,keys=7\r\n\
             shard_3:role=candidate,term=6,leader=0,commit=1,applied=1,keys=2\r\n\
             \r\n# Keyspace\r\ndb0:keys=7\r\n"
        )
    );
    assert_eq!(info::reply(Some("nope"), &node, &shards), Frame::bulk(""));
}

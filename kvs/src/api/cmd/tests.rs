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
    for (args, write) in [
        (&["SET", "k", "v"][..], true),
        (&["DEL", "k"], true),
        (&["INCR", "k"], true),
        (&["MSET", "k", "v"], true),
        (&["GET", "k"], false),
        (&["MGET", "k"], false),
        (&["EXISTS", "k"], false),
        (&["PING"], false),
    ] {
        let req = parse(args).unwrap();
        assert_eq!(req.is_write(), write, "{args:?}");
        assert_eq!(req.to_command().is_some(), write, "{args:?}");
    }
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
    assert_eq!(req.value_bytes_max_exceeded(6), Ok(()));
    assert_eq!(
        req.value_bytes_max_exceeded(5),
        Err(CmdError::ValueTooLarge { len: 6, max: 5 })
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

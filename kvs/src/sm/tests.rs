use super::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn set(key: &str, value: &str, condition: SetCondition) -> Command {
    Command::Set {
        key: b(key),
        value: b(value),
        condition,
    }
}

/// Applies the commands at indexes 1, 2, ... and returns the outcomes.
fn run(sm: &mut StateMachine, cmds: &[Command]) -> Vec<Outcome> {
    cmds.iter()
        .map(|c| {
            let index = sm.applied().next();
            sm.apply(index, c)
        })
        .collect()
}

#[test]
fn set_conditions() {
    let mut sm = StateMachine::new();
    let outcomes = run(
        &mut sm,
        &[
            set("k", "1", SetCondition::Xx),
            set("k", "1", SetCondition::Nx),
            set("k", "2", SetCondition::Nx),
            set("k", "3", SetCondition::Xx),
            set("k", "4", SetCondition::IfEq(b("1"))),
            set("k", "5", SetCondition::IfEq(b("3"))),
            set("absent", "x", SetCondition::IfEq(b(""))),
            set("k", "6", SetCondition::Always),
        ],
    );
    assert_eq!(
        outcomes,
        vec![
            Outcome::Nil,
            Outcome::Ok,
            Outcome::Nil,
            Outcome::Ok,
            Outcome::Nil,
            Outcome::Ok,
            Outcome::Nil,
            Outcome::Ok,
        ]
    );
    assert_eq!(sm.get(b"k"), Some(&b("6")));
    assert!(!sm.exists(b"absent"));
    assert_eq!(sm.applied(), LogIndex(8));
}

#[test]
fn del_counts_removed_keys() {
    let mut sm = StateMachine::new();
    let outcomes = run(
        &mut sm,
        &[
            Command::MSet {
                pairs: vec![(b("a"), b("1")), (b("b"), b("2")), (b("a"), b("3"))],
            },
            Command::Del {
                keys: vec![b("a"), b("a"), b("zz")],
            },
        ],
    );
    assert_eq!(outcomes, vec![Outcome::Ok, Outcome::Integer(1)]);
    assert_eq!(sm.len(), 1);
    assert_eq!(sm.get(b"b"), Some(&b("2")));
}

#[test]
fn incr_semantics_and_errors() {
    let mut sm = StateMachine::new();
    let outcomes = run(
        &mut sm,
        &[
            Command::Incr { key: b("n") },
            Command::Incr { key: b("n") },
            set("neg", "-5", SetCondition::Always),
            Command::Incr { key: b("neg") },
            set("max", &i64::MAX.to_string(), SetCondition::Always),
            Command::Incr { key: b("max") },
            set("bad", "12a", SetCondition::Always),
            Command::Incr { key: b("bad") },
            set("lead", "01", SetCondition::Always),
            Command::Incr { key: b("lead") },
            set("plus", "+1", SetCondition::Always),
            Command::Incr { key: b("plus") },
            set("space", " 1", SetCondition::Always),
            Command::Incr { key: b("space") },
            set("big", "9223372036854775808", SetCondition::Always),
            Command::Incr { key: b("big") },
            set("min", &i64::MIN.to_string(), SetCondition::Always),
            Command::Incr { key: b("min") },
        ],
    );
    let not_int = Outcome::Error("ERR value is not an integer or out of range".into());
    assert_eq!(
        outcomes,
        vec![
            Outcome::Integer(1),
            Outcome::Integer(2),
            Outcome::Ok,
            Outcome::Integer(-4),
            Outcome::Ok,
            Outcome::Error("ERR increment or decrement would overflow".into()),
            Outcome::Ok,
            not_int.clone(),
            Outcome::Ok,
            not_int.clone(),
            Outcome::Ok,
            not_int.clone(),
            Outcome::Ok,
            not_int.clone(),
            Outcome::Ok,
            not_int,
            Outcome::Ok,
            Outcome::Integer(i64::MIN + 1),
        ]
    );
    assert_eq!(sm.get(b"n"), Some(&b("2")));
    assert_eq!(sm.get(b"neg"), Some(&b("-4")));
    // A failed INCR changes nothing.
    assert_eq!(sm.get(b"max"), Some(&b(&i64::MAX.to_string())));
}

#[test]
#[should_panic(expected = "apply out of order")]
fn applying_an_old_index_panics() {
    let mut sm = StateMachine::new();
    sm.apply(LogIndex(5), &Command::Incr { key: b("k") });
    sm.apply_noop(LogIndex(5));
}

#[test]
fn indexes_may_skip_but_only_grow() {
    let mut sm = StateMachine::new();
    sm.apply_noop(LogIndex(3));
    sm.apply(LogIndex(7), &Command::Incr { key: b("k") });
    assert_eq!(sm.applied(), LogIndex(7));
}

#[test]
fn command_encoding_is_exact() {
    let cmd = set("k", "v", SetCondition::IfEq(b("o")));
    assert_eq!(
        &cmd.encode()[..],
        b"\x01\x01\x03\0\0\0\x01o\0\0\0\x01k\0\0\0\x01v"
    );
    let cmd = Command::Del {
        keys: vec![b("a"), b("bc")],
    };
    assert_eq!(
        &cmd.encode()[..],
        b"\x01\x02\0\0\0\x02\0\0\0\x01a\0\0\0\x02bc"
    );
    assert_eq!(
        &Command::Incr { key: b("") }.encode()[..],
        b"\x01\x03\0\0\0\0"
    );
}

#[test]
fn commands_round_trip() {
    let cmds = vec![
        set("k", "v", SetCondition::Always),
        set("k", "", SetCondition::Nx),
        set("", "v", SetCondition::Xx),
        set("k", "v", SetCondition::IfEq(b("old"))),
        Command::Del {
            keys: vec![b("a"), b("b")],
        },
        Command::Incr { key: b("n") },
        Command::MSet {
            pairs: vec![(b("a"), b("1")), (Bytes::from_static(&[0, 255]), b(""))],
        },
    ];
    for cmd in cmds {
        assert_eq!(Command::decode(&cmd.encode()), Ok(cmd));
    }
}

#[test]
fn command_decode_rejects_garbage() {
    assert_eq!(
        Command::decode(b""),
        Err(DecodeError::Truncated {
            offset: 0,
            needed: 1
        })
    );
    assert_eq!(Command::decode(b"\x02\x01"), Err(DecodeError::Version(2)));
    assert_eq!(
        Command::decode(b"\x01\x09"),
        Err(DecodeError::Tag {
            what: "command",
            tag: 9
        })
    );
    assert_eq!(
        Command::decode(b"\x01\x01\x07"),
        Err(DecodeError::Tag {
            what: "set condition",
            tag: 7
        })
    );
    assert_eq!(
        Command::decode(b"\x01\x02\0\0\0\0"),
        Err(DecodeError::Invalid("DEL without keys"))
    );
    // A huge count with no bytes behind it is refused before any allocation.
    assert_eq!(
        Command::decode(b"\x01\x02\xff\xff\xff\xff"),
        Err(DecodeError::Truncated {
            offset: 2,
            needed: 17_179_869_180
        })
    );
    let mut trailing = Command::Incr { key: b("k") }.encode().to_vec();
    trailing.push(0);
    assert_eq!(
        Command::decode(&trailing),
        Err(DecodeError::TrailingBytes(1))
    );
    // Every truncation of a valid encoding is an error, never a panic.
    let full = Command::MSet {
        pairs: vec![(b("a"), b("1")), (b("b"), b("2"))],
    }
    .encode();
    for cut in 0..full.len() {
        assert!(Command::decode(&full[..cut]).is_err(), "cut {cut}");
    }
}

fn sample() -> StateMachine {
    let mut sm = StateMachine::new();
    run(
        &mut sm,
        &[
            set("b", "2", SetCondition::Always),
            set("a", "1", SetCondition::Always),
            Command::Incr { key: b("n") },
        ],
    );
    sm
}

#[test]
fn snapshot_encoding_is_exact_and_round_trips() {
    let mut sm = StateMachine::new();
    sm.apply(LogIndex(2), &set("k", "v", SetCondition::Always));
    let snap = sm.snapshot();
    let body: &[u8] = b"KVSM\x01\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0\x01\0\0\0\x01k\0\0\0\x01v";
    assert_eq!(&snap[..body.len()], body);
    assert_eq!(&snap[body.len()..], &crc32c::crc32c(body).to_be_bytes()[..]);

    let sm = sample();
    let restored = StateMachine::restore(&sm.snapshot()).unwrap();
    assert_eq!(restored, sm);
    assert_eq!(restored.applied(), LogIndex(3));
    assert_eq!(restored.get(b"n"), Some(&b("1")));
    let empty = StateMachine::new();
    assert_eq!(StateMachine::restore(&empty.snapshot()), Ok(empty));
}

#[test]
fn corrupt_snapshots_are_rejected() {
    let snap = sample().snapshot().to_vec();
    // Any single flipped bit anywhere is caught (magic, checksum or version check).
    for at in 0..snap.len() {
        for bit in 0..8 {
            let mut bad = snap.clone();
            bad[at] ^= 1 << bit;
            assert!(StateMachine::restore(&bad).is_err(), "byte {at} bit {bit}");
        }
    }
    for cut in 0..snap.len() {
        assert!(StateMachine::restore(&snap[..cut]).is_err(), "cut {cut}");
    }
    let mut bad = snap.clone();
    bad[0] = b'X';
    assert_eq!(StateMachine::restore(&bad), Err(DecodeError::Magic));
    let mut bad = snap.clone();
    bad[20] ^= 1;
    assert!(matches!(
        StateMachine::restore(&bad),
        Err(DecodeError::Checksum { .. })
    ));
}

#[test]
fn snapshot_with_a_valid_checksum_but_bad_order_is_rejected() {
    // Hand-built: keys "b" then "a", with a correct CRC.
    let mut body = b"KVSM\x01\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\x02".to_vec();
    for (k, v) in [("b", "1"), ("a", "2")] {
        body.extend_from_slice(&[0, 0, 0, 1]);
        body.extend_from_slice(k.as_bytes());
        body.extend_from_slice(&[0, 0, 0, 1]);
        body.extend_from_slice(v.as_bytes());
    }
    let crc = crc32c::crc32c(&body);
    body.extend_from_slice(&crc.to_be_bytes());
    assert_eq!(
        StateMachine::restore(&body),
        Err(DecodeError::Invalid("snapshot keys not strictly ascending"))
    );
}

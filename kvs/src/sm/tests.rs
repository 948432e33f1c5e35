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

/// The string under `key`; `None` when absent or a set.
fn string<'a>(sm: &'a StateMachine, key: &[u8]) -> Option<&'a Bytes> {
    sm.get(key).and_then(Value::as_str)
}

fn members(list: &[&str]) -> Vec<Bytes> {
    list.iter().map(|m| b(m)).collect()
}

fn sadd(key: &str, list: &[&str]) -> Command {
    Command::SAdd {
        key: b(key),
        members: members(list),
    }
}

fn srem(key: &str, list: &[&str]) -> Command {
    Command::SRem {
        key: b(key),
        members: members(list),
    }
}

fn incr_by(key: &str, delta: i64) -> Command {
    Command::IncrBy { key: b(key), delta }
}

fn wrong_type() -> Outcome {
    Outcome::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
}

fn array(list: &[&str]) -> Outcome {
    Outcome::Array(list.iter().map(|m| Some(b(m))).collect())
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
    assert_eq!(string(&sm, b"k"), Some(&b("6")));
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
    assert_eq!(string(&sm, b"b"), Some(&b("2")));
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
    assert_eq!(string(&sm, b"n"), Some(&b("2")));
    assert_eq!(string(&sm, b"neg"), Some(&b("-4")));
    // A failed INCR changes nothing.
    assert_eq!(string(&sm, b"max"), Some(&b(&i64::MAX.to_string())));
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
    // Version 2: the entry carries its type (0, a string).
    let body: &[u8] = b"KVSM\x02\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0\x01\0\0\0\x01k\0\0\0\0\x01v";
    assert_eq!(&snap[..body.len()], body);
    assert_eq!(&snap[body.len()..], &crc32c::crc32c(body).to_be_bytes()[..]);

    let sm = sample();
    let restored = StateMachine::restore(&sm.snapshot()).unwrap();
    assert_eq!(restored, sm);
    assert_eq!(restored.applied(), LogIndex(3));
    assert_eq!(string(&restored, b"n"), Some(&b("1")));
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

/// The project's seeded generator, so a failing run can be replayed from its seed.
struct SplitMix64(crate::raft::rand::SplitMix64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n.max(1))
    }

    fn key(&mut self) -> Bytes {
        // A small key space so that conditions both hold and fail.
        Bytes::from(format!("k{}", self.below(6)))
    }

    fn value(&mut self) -> Bytes {
        match self.below(3) {
            0 => Bytes::from(self.below(100).to_string()),
            1 => Bytes::new(),
            _ => Bytes::from(format!("v{}", self.below(4))),
        }
    }

    fn members(&mut self) -> Vec<Bytes> {
        (0..=self.below(3))
            .map(|_| Bytes::from(format!("m{}", self.below(5))))
            .collect()
    }

    fn command(&mut self) -> Command {
        match self.below(8) {
            0 => Command::Set {
                key: self.key(),
                value: self.value(),
                condition: match self.below(4) {
                    0 => SetCondition::Always,
                    1 => SetCondition::Nx,
                    2 => SetCondition::Xx,
                    _ => SetCondition::IfEq(self.value()),
                },
            },
            1 => Command::Del {
                keys: (0..=self.below(3)).map(|_| self.key()).collect(),
            },
            2 => Command::Incr { key: self.key() },
            3 => Command::IncrBy {
                key: self.key(),
                delta: match self.below(4) {
                    0 => i64::MIN,
                    1 => i64::MAX,
                    _ => self.below(21) as i64 - 10,
                },
            },
            4 | 5 => Command::SAdd {
                key: self.key(),
                members: self.members(),
            },
            6 => Command::SRem {
                key: self.key(),
                members: self.members(),
            },
            _ => Command::MSet {
                pairs: (0..=self.below(3))
                    .map(|_| (self.key(), self.value()))
                    .collect(),
            },
        }
    }

    fn query(&mut self) -> Query {
        match self.below(6) {
            0 => Query::Get(self.key()),
            1 => Query::MGet((0..=self.below(3)).map(|_| self.key()).collect()),
            2 => Query::Exists((0..=self.below(3)).map(|_| self.key()).collect()),
            3 => Query::SMembers(self.key()),
            4 => Query::SIsMember {
                key: self.key(),
                member: Bytes::from(format!("m{}", self.below(5))),
            },
            _ => Query::SCard(self.key()),
        }
    }
}

#[test]
fn random_histories_replay_identically_through_encoding_and_snapshots() {
    let seed = 0xC0FF_EE00_u64;
    println!("sm random history seed: {seed:#x}");
    let mut rng = SplitMix64(crate::raft::rand::SplitMix64::new(seed));
    let mut direct = StateMachine::new();
    let mut via_log = StateMachine::new();
    for i in 1..=2_000u64 {
        let cmd = rng.command();
        let encoded = cmd.encode();
        let decoded = Command::decode(&encoded).unwrap();
        assert_eq!(decoded, cmd, "step {i}");
        let a = direct.apply(LogIndex(i), &cmd);
        let b = via_log.apply(LogIndex(i), &decoded);
        assert_eq!(a, b, "step {i}");
        let query = rng.query();
        assert_eq!(direct.read(&query), via_log.read(&query), "step {i}");
        // The invariant: a set is never left empty.
        assert!(
            direct
                .map
                .values()
                .all(|v| v.as_set().is_none_or(|m| !m.is_empty())),
            "step {i}"
        );
        if i % 97 == 0 {
            // A replica restored from a snapshot continues exactly like the original.
            via_log = StateMachine::restore(&via_log.snapshot()).unwrap();
        }
    }
    assert_eq!(direct, via_log);
}

#[test]
fn decoding_random_bytes_never_panics() {
    let seed = 0x00DE_C0DE_u64;
    println!("decode fuzz seed: {seed:#x}");
    let mut rng = SplitMix64(crate::raft::rand::SplitMix64::new(seed));
    let snapshot = {
        let mut sm = StateMachine::new();
        for i in 1..=20 {
            let cmd = rng.command();
            sm.apply(LogIndex(i), &cmd);
        }
        sm.snapshot()
    };
    for round in 0..20_000 {
        let len = rng.below(48) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if rng.below(2) == 0 && !bytes.is_empty() {
            bytes[0] = COMMAND_VERSION;
        }
        let _ = Command::decode(&bytes);
        let _ = StateMachine::restore(&bytes);
        // Mutate a valid command encoding: decode either errors or yields some command.
        let mut enc = rng.command().encode().to_vec();
        let at = rng.below(enc.len() as u64) as usize;
        enc[at] = rng.next() as u8;
        let _ = Command::decode(&enc);
        // Any change to a snapshot is rejected.
        let mut snap = snapshot.to_vec();
        let at = rng.below(snap.len() as u64) as usize;
        let flip = (rng.below(255) + 1) as u8;
        snap[at] ^= flip;
        assert!(StateMachine::restore(&snap).is_err(), "round {round}");
    }
}

#[test]
fn sadd_and_srem_count_members_and_an_emptied_set_is_removed() {
    let mut sm = StateMachine::new();
    let outcomes = run(
        &mut sm,
        &[
            sadd("s", &["a", "b", "a"]),
            sadd("s", &["b", "c"]),
            srem("s", &["a", "zz", "a"]),
            srem("absent", &["a"]),
            srem("s", &["b", "c"]),
            sadd("s", &["x"]),
        ],
    );
    assert_eq!(
        outcomes,
        vec![
            Outcome::Integer(2),
            Outcome::Integer(1),
            Outcome::Integer(1),
            Outcome::Integer(0),
            Outcome::Integer(2),
            Outcome::Integer(1),
        ]
    );
    assert_eq!(sm.read(&Query::SMembers(b("s"))), array(&["x"]));
    assert_eq!(sm.len(), 1);
    // Emptied by SREM: the key is gone, as in Redis.
    run(&mut sm, &[srem("s", &["x"])]);
    assert!(!sm.exists(b"s"));
    assert!(sm.is_empty());
    assert_eq!(sm.read(&Query::Exists(vec![b("s")])), Outcome::Integer(0));
}

#[test]
fn set_reads_sort_members_and_answer_absent_keys() {
    let mut sm = StateMachine::new();
    run(&mut sm, &[sadd("s", &["c", "a", "b", "\u{0}z"])]);
    assert_eq!(
        sm.read(&Query::SMembers(b("s"))),
        array(&["\u{0}z", "a", "b", "c"])
    );
    assert_eq!(sm.read(&Query::SMembers(b("none"))), Outcome::Array(vec![]));
    let is_member = |key: &str, member: &str| {
        sm.read(&Query::SIsMember {
            key: b(key),
            member: b(member),
        })
    };
    assert_eq!(is_member("s", "a"), Outcome::Integer(1));
    assert_eq!(is_member("s", "zz"), Outcome::Integer(0));
    assert_eq!(is_member("none", "a"), Outcome::Integer(0));
    assert_eq!(sm.read(&Query::SCard(b("s"))), Outcome::Integer(4));
    assert_eq!(sm.read(&Query::SCard(b("none"))), Outcome::Integer(0));
}

#[test]
fn string_reads() {
    let mut sm = StateMachine::new();
    run(
        &mut sm,
        &[Command::MSet {
            pairs: vec![(b("a"), b("1")), (b("b"), b("2"))],
        }],
    );
    assert_eq!(sm.read(&Query::Get(b("a"))), Outcome::Bulk(b("1")));
    assert_eq!(sm.read(&Query::Get(b("zz"))), Outcome::Nil);
    assert_eq!(
        sm.read(&Query::MGet(vec![b("a"), b("zz"), b("b")])),
        Outcome::Array(vec![Some(b("1")), None, Some(b("2"))])
    );
    assert_eq!(
        sm.read(&Query::Exists(vec![b("a"), b("a"), b("zz")])),
        Outcome::Integer(2)
    );
}

#[test]
fn commands_of_the_wrong_type_answer_wrongtype_and_change_nothing() {
    let mut sm = StateMachine::new();
    run(
        &mut sm,
        &[set("str", "5", SetCondition::Always), sadd("set", &["m"])],
    );
    let before = sm.clone();
    let outcomes = run(
        &mut sm,
        &[
            sadd("str", &["x"]),
            srem("str", &["5"]),
            Command::Incr { key: b("set") },
            incr_by("set", 3),
            incr_by("set", -1),
            set("set", "v", SetCondition::IfEq(b("m"))),
        ],
    );
    assert_eq!(outcomes, vec![wrong_type(); 6]);
    assert_eq!(sm.map, before.map, "a WRONGTYPE command changed the data");
    for query in [
        Query::SMembers(b("str")),
        Query::SIsMember {
            key: b("str"),
            member: b("5"),
        },
        Query::SCard(b("str")),
        Query::Get(b("set")),
    ] {
        assert_eq!(sm.read(&query), wrong_type(), "{query:?}");
    }
    // MGET answers nil for a set; EXISTS counts keys of any type.
    assert_eq!(
        sm.read(&Query::MGet(vec![b("set"), b("str")])),
        Outcome::Array(vec![None, Some(b("5"))])
    );
    assert_eq!(
        sm.read(&Query::Exists(vec![b("set"), b("str")])),
        Outcome::Integer(2)
    );
    // SET NX finds the set present; XX and plain SET replace it with a string (as Redis does).
    let outcomes = run(
        &mut sm,
        &[
            set("set", "nx", SetCondition::Nx),
            set("set", "xx", SetCondition::Xx),
            sadd("other", &["m"]),
            set("other", "plain", SetCondition::Always),
            Command::Incr { key: b("str") },
            sadd("gone", &["m"]),
            Command::Del {
                keys: vec![b("gone"), b("gone")],
            },
        ],
    );
    assert_eq!(
        outcomes,
        vec![
            Outcome::Nil,
            Outcome::Ok,
            Outcome::Integer(1),
            Outcome::Ok,
            Outcome::Integer(6),
            Outcome::Integer(1),
            Outcome::Integer(1),
        ]
    );
    assert_eq!(string(&sm, b"set"), Some(&b("xx")));
    assert_eq!(string(&sm, b"other"), Some(&b("plain")));
    assert!(!sm.exists(b"gone"));
    // A string replaced by a set through DEL then SADD is a set.
    run(
        &mut sm,
        &[
            Command::Del {
                keys: vec![b("str")],
            },
            sadd("str", &["now"]),
        ],
    );
    assert_eq!(sm.get(b"str").map(Value::type_name), Some("set"));
}

#[test]
fn incrby_and_decrby_semantics_and_errors() {
    let mut sm = StateMachine::new();
    let outcomes = run(
        &mut sm,
        &[
            incr_by("n", 5),
            incr_by("n", -10),
            incr_by("n", 0),
            set("max", &(i64::MAX - 1).to_string(), SetCondition::Always),
            incr_by("max", 1),
            incr_by("max", 1),
            set("min", &(i64::MIN + 1).to_string(), SetCondition::Always),
            incr_by("min", -1),
            incr_by("min", -1),
            incr_by("zero", i64::MIN),
            incr_by("zero", -1),
            set("bad", "1.5", SetCondition::Always),
            incr_by("bad", 1),
        ],
    );
    let overflow = Outcome::Error("ERR increment or decrement would overflow".into());
    assert_eq!(
        outcomes,
        vec![
            Outcome::Integer(5),
            Outcome::Integer(-5),
            Outcome::Integer(-5),
            Outcome::Ok,
            Outcome::Integer(i64::MAX),
            overflow.clone(),
            Outcome::Ok,
            Outcome::Integer(i64::MIN),
            overflow.clone(),
            Outcome::Integer(i64::MIN),
            overflow,
            Outcome::Ok,
            Outcome::Error("ERR value is not an integer or out of range".into()),
        ]
    );
    assert_eq!(string(&sm, b"n"), Some(&b("-5")));
    assert_eq!(string(&sm, b"max"), Some(&b(&i64::MAX.to_string())));
    assert_eq!(string(&sm, b"zero"), Some(&b(&i64::MIN.to_string())));
    assert_eq!(string(&sm, b"bad"), Some(&b("1.5")));
}

#[test]
fn parse_integer_is_redis_strict() {
    for (text, want) in [
        ("0", Some(0)),
        ("-1", Some(-1)),
        ("9223372036854775807", Some(i64::MAX)),
        ("-9223372036854775808", Some(i64::MIN)),
        ("9223372036854775808", None),
        ("", None),
        ("-", None),
        ("-0", None),
        ("01", None),
        ("+1", None),
        (" 1", None),
        ("1 ", None),
        ("1e3", None),
        ("000000000000000000001", None),
    ] {
        assert_eq!(parse_integer(text.as_bytes()), want, "{text:?}");
    }
}

#[test]
fn new_command_encodings_are_exact_and_round_trip() {
    assert_eq!(
        &sadd("k", &["a", "bc"]).encode()[..],
        b"\x01\x05\0\0\0\x01k\0\0\0\x02\0\0\0\x01a\0\0\0\x02bc"
    );
    assert_eq!(
        &srem("k", &["a"]).encode()[..],
        b"\x01\x06\0\0\0\x01k\0\0\0\x01\0\0\0\x01a"
    );
    assert_eq!(
        &incr_by("k", -2).encode()[..],
        b"\x01\x07\0\0\0\x01k\xff\xff\xff\xff\xff\xff\xff\xfe"
    );
    for cmd in [
        sadd("", &[""]),
        srem("s", &["a", "a", "b"]),
        incr_by("n", i64::MIN),
        incr_by("n", i64::MAX),
    ] {
        assert_eq!(Command::decode(&cmd.encode()), Ok(cmd.clone()));
        let full = cmd.encode();
        for cut in 0..full.len() {
            assert!(Command::decode(&full[..cut]).is_err(), "{cmd:?} cut {cut}");
        }
    }
    assert_eq!(
        Command::decode(b"\x01\x05\0\0\0\x01k\0\0\0\0"),
        Err(DecodeError::Invalid("SADD or SREM without members"))
    );
    assert_eq!(
        Command::decode(b"\x01\x06\0\0\0\x01k\0\0\0\0"),
        Err(DecodeError::Invalid("SADD or SREM without members"))
    );
    // A huge member count with nothing behind it is refused before any allocation.
    assert_eq!(
        Command::decode(b"\x01\x05\0\0\0\x01k\xff\xff\xff\xff"),
        Err(DecodeError::Truncated {
            offset: 7,
            needed: 17_179_869_180
        })
    );
    assert_eq!(
        Command::decode(b"\x01\x08"),
        Err(DecodeError::Tag {
            what: "command",
            tag: 8
        })
    );
}

/// A hand-built version-2 snapshot body (header, then `entries`), sealed with a valid CRC.
fn sealed(version: u8, count: u64, entries: &[u8]) -> Vec<u8> {
    let mut body = b"KVSM".to_vec();
    body.push(version);
    body.extend_from_slice(&9u64.to_be_bytes());
    body.extend_from_slice(&count.to_be_bytes());
    body.extend_from_slice(entries);
    let crc = crc32c::crc32c(&body);
    body.extend_from_slice(&crc.to_be_bytes());
    body
}

#[test]
fn snapshots_of_mixed_types_round_trip_and_encode_exactly() {
    let mut sm = StateMachine::new();
    run(
        &mut sm,
        &[
            sadd("s", &["y", "x"]),
            set("a", "1", SetCondition::Always),
            incr_by("n", -3),
        ],
    );
    let snap = sm.snapshot();
    assert_eq!(snap[4], SNAPSHOT_VERSION);
    assert_eq!(SNAPSHOT_VERSION, 2);
    let want = sealed(
        2,
        3,
        b"\0\0\0\x01a\0\0\0\0\x011\
          \0\0\0\x01n\0\0\0\0\x02-3\
          \0\0\0\x01s\x01\0\0\0\x02\0\0\0\x01x\0\0\0\x01y",
    );
    // Same bytes but the applied index (3 here, 9 in `sealed`).
    let mut want = want;
    want[5..13].copy_from_slice(&3u64.to_be_bytes());
    let crc = crc32c::crc32c(&want[..want.len() - 4]);
    let at = want.len() - 4;
    want[at..].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(&snap[..], &want[..]);
    let restored = StateMachine::restore(&snap).unwrap();
    assert_eq!(restored, sm);
    assert_eq!(restored.read(&Query::SMembers(b("s"))), array(&["x", "y"]));
    assert_eq!(restored.applied(), LogIndex(3));
}

#[test]
fn version_1_snapshots_still_load_as_strings() {
    // What a node wrote before sets existed: no type byte, every value a string.
    let v1 = sealed(1, 2, b"\0\0\0\x01a\0\0\0\x011\0\0\0\x01b\0\0\0\0");
    let sm = StateMachine::restore(&v1).unwrap();
    assert_eq!(sm.applied(), LogIndex(9));
    assert_eq!(string(&sm, b"a"), Some(&b("1")));
    assert_eq!(string(&sm, b"b"), Some(&b("")));
    assert_eq!(sm.len(), 2);
    // Loaded and written again, it becomes version 2 with the same content.
    let again = StateMachine::restore(&sm.snapshot()).unwrap();
    assert_eq!(again, sm);
    // A version never written is refused.
    assert_eq!(
        StateMachine::restore(&sealed(3, 0, b"")),
        Err(DecodeError::Version(3))
    );
    // Version 1 has no type byte: a v1 entry is read as two strings, never as a set.
    let v1_set_like = sealed(1, 1, b"\0\0\0\x01s\x01\0\0\0");
    assert!(StateMachine::restore(&v1_set_like).is_err());
}

#[test]
fn version_2_snapshots_that_break_a_rule_are_rejected() {
    let cases: Vec<(&[u8], DecodeError)> = vec![
        (
            b"\0\0\0\x01s\x01\0\0\0\0",
            DecodeError::Invalid("an empty set in the snapshot"),
        ),
        (
            b"\0\0\0\x01s\x01\0\0\0\x02\0\0\0\x01b\0\0\0\x01a",
            DecodeError::Invalid("set members not strictly ascending"),
        ),
        (
            b"\0\0\0\x01s\x01\0\0\0\x02\0\0\0\x01a\0\0\0\x01a",
            DecodeError::Invalid("set members not strictly ascending"),
        ),
        (
            b"\0\0\0\x01s\x07\0\0\0\x01a",
            DecodeError::Tag {
                what: "value type",
                tag: 7,
            },
        ),
        (
            b"\0\0\0\x01s\x01\xff\xff\xff\xff",
            // Offsets count from the version byte: 17 of header, 5 of key, 1 of type.
            DecodeError::Truncated {
                offset: 23,
                needed: 17_179_869_180,
            },
        ),
    ];
    for (entries, want) in cases {
        assert_eq!(
            StateMachine::restore(&sealed(2, 1, entries)),
            Err(want.clone()),
            "{want}"
        );
    }
    // Keys out of order, across types.
    let unordered = sealed(
        2,
        2,
        b"\0\0\0\x01b\0\0\0\0\x011\0\0\0\x01a\x01\0\0\0\x01\0\0\0\x01m",
    );
    assert_eq!(
        StateMachine::restore(&unordered),
        Err(DecodeError::Invalid("snapshot keys not strictly ascending"))
    );
    // An entry count the bytes cannot hold.
    assert_eq!(
        StateMachine::restore(&sealed(2, u64::MAX, b"")),
        Err(DecodeError::Invalid("entry count larger than the snapshot"))
    );
    // Too few entries for the count, or bytes left after them.
    let one = b"\0\0\0\x01a\0\0\0\0\x011";
    assert!(StateMachine::restore(&sealed(2, 2, &[&one[..], b"\0\0\0\0\0"].concat())).is_err());
    assert_eq!(
        StateMachine::restore(&sealed(2, 1, &[&one[..], b"\0"].concat())),
        Err(DecodeError::TrailingBytes(1))
    );
}

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

    fn command(&mut self) -> Command {
        match self.below(4) {
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
            _ => Command::MSet {
                pairs: (0..=self.below(3))
                    .map(|_| (self.key(), self.value()))
                    .collect(),
            },
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

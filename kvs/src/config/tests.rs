use super::*;

fn local3() -> ClusterConfig {
    ClusterConfig::local(3, 8, 3, 7000, PathBuf::from("./data")).unwrap()
}

/// The first field error of an invalid config, as text.
fn first_error(config: &ClusterConfig) -> String {
    match config.validate() {
        Err(ConfigError::Invalid(errors)) => errors[0].to_string(),
        other => panic!("expected invalid, got {other:?}"),
    }
}

const MINIMAL: &str = "\
nodes:
  - id: 1
    client_addr: 127.0.0.1:7000
    peer_addr: 127.0.0.1:17000
  - id: 2
    client_addr: 127.0.0.1:7001
    peer_addr: 127.0.0.1:17001
    advertise_client_addr: 10.0.0.2:7001
    peer_routes:
      1: 127.0.0.1:20001
shard_count: 4
replica_count: 2
data_dir: /tmp/kvs
";

#[test]
fn minimal_yaml_gets_defaults_and_helpers_work() {
    let config = ClusterConfig::from_yaml_str(MINIMAL).unwrap();
    assert_eq!(config.tick_ms, 10);
    assert_eq!(config.heartbeat_ticks, 5);
    assert_eq!(config.election_ticks, 50);
    assert!(config.fsync);
    assert_eq!(config.snapshot_log_entries_max, 10_000);
    assert_eq!(
        config.io_threads, None,
        "one I/O thread per core unless set"
    );
    assert!(
        config.balance_leaders,
        "leaders are balanced unless turned off"
    );
    assert_eq!(config.limits, Limits::default());
    assert_eq!(config.tick(), Duration::from_millis(10));
    let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
    assert_eq!(
        config.route_to(NodeId(2), NodeId(1)),
        Some(addr("127.0.0.1:20001"))
    );
    assert_eq!(
        config.route_to(NodeId(1), NodeId(2)),
        Some(addr("127.0.0.1:17001"))
    );
    assert_eq!(config.route_to(NodeId(1), NodeId(9)), None);
    assert_eq!(
        config.node(NodeId(2)).unwrap().advertised_client_addr(),
        addr("10.0.0.2:7001")
    );
    assert_eq!(
        config.node(NodeId(1)).unwrap().advertised_client_addr(),
        addr("127.0.0.1:7000")
    );
    assert_eq!(
        config.data_dir_for(NodeId(2)),
        PathBuf::from("/tmp/kvs/node-2")
    );
    assert_eq!(config.shard_map().unwrap().shard_count(), 4);
}

#[test]
fn local_layout_is_exact_and_round_trips() {
    let config = local3();
    let ports: Vec<(u64, u16, u16)> = config
        .nodes
        .iter()
        .map(|n| (n.id, n.client_addr.port(), n.peer_addr.port()))
        .collect();
    assert_eq!(
        ports,
        vec![(1, 7000, 17000), (2, 7001, 17001), (3, 7002, 17002)]
    );
    let yaml = config.to_yaml();
    assert!(yaml.contains("client_addr: 127.0.0.1:7000\n"), "{yaml}");
    assert!(yaml.contains("fsync: true\n"), "{yaml}");
    assert_eq!(ClusterConfig::from_yaml_str(&yaml).unwrap(), config);

    let dir = std::env::temp_dir().join(format!("kvs-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cluster.yaml");
    std::fs::write(&path, &yaml).unwrap();
    assert_eq!(ClusterConfig::load(&path).unwrap(), config);
    std::fs::remove_dir_all(&dir).unwrap();

    // A config with routes and an advertised address round-trips too.
    let config = ClusterConfig::from_yaml_str(MINIMAL).unwrap();
    assert_eq!(
        ClusterConfig::from_yaml_str(&config.to_yaml()).unwrap(),
        config
    );
}

#[test]
fn local_rejects_ports_past_65535() {
    let err = ClusterConfig::local(3, 1, 1, 60_000, PathBuf::from("d")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "port_base: 60000 with 3 nodes needs ports up to 70002, but ports are 1..=65535"
    );
    let err = ClusterConfig::local(3, 8, 4, 7000, PathBuf::from("d")).unwrap_err();
    assert_eq!(err.to_string(), "replica_count: 4 exceeds the 3 nodes");
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A change that makes a valid config invalid.
type Breaker = Box<dyn Fn(&mut ClusterConfig)>;

#[test]
fn each_error_names_its_field() {
    let cases: Vec<(Breaker, &str)> =
        vec![
        (
            Box::new(|c| c.nodes[1].peer_addr = addr("127.0.0.1:7000")),
            "nodes[1].peer_addr: duplicate address 127.0.0.1:7000 (also nodes[0].client_addr)",
        ),
        (
            Box::new(|c| c.nodes[1].id = 1),
            "nodes[1].id: duplicate id 1 (also nodes[0].id)",
        ),
        (Box::new(|c| c.nodes[2].id = 0), "nodes[2].id: must not be 0"),
        (
            Box::new(|c| c.nodes[0].client_addr = addr("127.0.0.1:0")),
            "nodes[0].client_addr: port 0 is not allowed",
        ),
        (
            Box::new(|c| c.nodes[0].client_addr = addr("0.0.0.0:7000")),
            "nodes[0].advertise_client_addr: required because client_addr 0.0.0.0:7000 is not \
             an address clients can reach",
        ),
        (
            Box::new(|c| c.nodes[1].advertise_client_addr = Some(addr("127.0.0.1:7000"))),
            "nodes[1].advertise_client_addr: duplicate advertised address 127.0.0.1:7000 (also \
             nodes[0].advertise_client_addr)",
        ),
        (
            Box::new(|c| {
                c.nodes[0].peer_routes.insert(9, addr("127.0.0.1:9000"));
            }),
            "nodes[0].peer_routes.9: unknown node id 9",
        ),
        (
            Box::new(|c| {
                c.nodes[0].peer_routes.insert(1, addr("127.0.0.1:9000"));
            }),
            "nodes[0].peer_routes.1: a route to the node itself",
        ),
        (Box::new(|c| c.nodes.clear()), "nodes: must list at least one node"),
        (Box::new(|c| c.shard_count = 0), "shard_count: 0 is not in 1..=16384"),
        (
            Box::new(|c| c.shard_count = 16385),
            "shard_count: 16385 is not in 1..=16384",
        ),
        (Box::new(|c| c.replica_count = 4), "replica_count: 4 exceeds the 3 nodes"),
        (Box::new(|c| c.replica_count = 0), "replica_count: must be at least 1"),
        (Box::new(|c| c.data_dir = PathBuf::new()), "data_dir: must not be empty"),
        (Box::new(|c| c.tick_ms = 0), "tick_ms: 0 is not in 1..=60000"),
        (Box::new(|c| c.heartbeat_ticks = 0), "heartbeat_ticks: must be at least 1"),
        (
            Box::new(|c| c.election_ticks = 5),
            "election_ticks: must be greater than heartbeat_ticks (5)",
        ),
        (
            Box::new(|c| c.snapshot_log_entries_max = 0),
            "snapshot_log_entries_max: must be at least 1",
        ),
        (Box::new(|c| c.io_threads = Some(0)), "io_threads: must be at least 1"),
        (
            Box::new(|c| c.limits.pending_requests_max = 0),
            "limits.pending_requests_max: must be at least 1",
        ),
        (
            Box::new(|c| c.limits.value_bytes_max = c.limits.request_bytes_max + 1),
            "limits.value_bytes_max: 4194305 exceeds limits.request_bytes_max 4194304",
        ),
    ];
    for (break_it, want) in cases {
        let mut config = local3();
        break_it(&mut config);
        assert_eq!(first_error(&config), want);
    }
}

#[test]
fn all_errors_are_reported_together() {
    let mut config = local3();
    config.shard_count = 0;
    config.tick_ms = 0;
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "shard_count: 0 is not in 1..=16384\ntick_ms: 0 is not in 1..=60000"
    );
}

#[test]
fn parse_errors_name_the_field() {
    let unknown = MINIMAL.replace("shard_count: 4", "shard_count: 4\nshards: 9");
    let err = ClusterConfig::from_yaml_str(&unknown)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("unknown field `shards`"), "{err}");

    let nested = MINIMAL.replace(
        "    peer_addr: 127.0.0.1:17000",
        "    peer_addr: 127.0.0.1:17000\n    port: 1",
    );
    let err = ClusterConfig::from_yaml_str(&nested)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("nodes[0]: unknown field `port`"), "{err}");

    let bad_addr = MINIMAL.replace("client_addr: 127.0.0.1:7001", "client_addr: localhost");
    let err = ClusterConfig::from_yaml_str(&bad_addr)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("nodes[1].client_addr: "), "{err}");

    let missing = MINIMAL.replace("replica_count: 2\n", "");
    let err = ClusterConfig::from_yaml_str(&missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing field `replica_count`"), "{err}");

    let err = ClusterConfig::load(Path::new("/nonexistent/kvs.yaml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/kvs.yaml: cannot read the config file: "),
        "{err}"
    );
}

#[test]
fn frame_limits_follow_the_config() {
    let limits = Limits::default().frame_limits();
    assert_eq!(
        limits,
        FrameLimits {
            request_bytes_max: 4 << 20,
            bulk_bytes_max: 4 << 20,
            array_len_max: 1 << 20,
            nesting_max: 4,
        }
    );
}

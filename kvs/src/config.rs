//! The cluster configuration: one YAML file shared by every node, parsed with serde and checked
//! by [`ClusterConfig::validate`], whose every error names the field it is about
//! (`nodes[1].peer_addr: duplicate address ...`).
//!
//! Also the generator behind `kvs cluster-config`: [`ClusterConfig::local`] lays out a cluster
//! on 127.0.0.1 with Redis Cluster's port convention (client port `port_base + i - 1` for node
//! `i`, peer port = client port + 10000). This module reads the file it is given and nothing
//! else; it opens no socket and creates no directory.

use crate::api::FrameLimits;
use crate::raft::types::NodeId;
use crate::shard::{ShardMap, ShardMapError, SLOT_COUNT};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What [`ClusterConfig::local`] adds to a node's client port to get its peer port (Redis
/// Cluster's bus-port offset).
pub const LOCAL_PEER_PORT_OFFSET: u16 = 10_000;

/// Largest `tick_ms` accepted: one minute.
pub const TICK_MS_MAX: u64 = 60_000;

/// Elements of one request array (see [`Limits::frame_limits`]).
pub const REQUEST_ARRAY_LEN_MAX: usize = 1 << 20;

/// Depth of nested arrays in a request (see [`Limits::frame_limits`]). Commands are flat.
pub const REQUEST_NESTING_MAX: usize = 4;

/// The whole cluster's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Every node of the cluster, ids unique and non-zero.
    pub nodes: Vec<NodeConfig>,
    /// Number of shards (Raft groups), 1..=16384.
    pub shard_count: u32,
    /// Replicas per shard, 1..=the number of nodes.
    pub replica_count: usize,
    /// Root of the nodes' data; node `i` keeps its files in `<data_dir>/node-<i>`.
    pub data_dir: PathBuf,
    /// Milliseconds per Raft tick. Default 10.
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u64,
    /// Ticks between a leader's heartbeats. Default 5 (50 ms).
    #[serde(default = "default_heartbeat_ticks")]
    pub heartbeat_ticks: u32,
    /// Base election timeout in ticks (randomized above it by the core); must exceed
    /// `heartbeat_ticks`. Default 50 (500 ms).
    #[serde(default = "default_election_ticks")]
    pub election_ticks: u32,
    /// Whether the WAL is fsynced before acknowledging (default true). Off loses the durability
    /// guarantee on power loss; only for experiments.
    #[serde(default = "default_fsync")]
    pub fsync: bool,
    /// Take a snapshot of a group once its log holds more than this many entries since the last
    /// one, and more entries than the group has keys (so the cost of writing a snapshot, which
    /// grows with the keys, stays constant per entry). Default 10000.
    #[serde(default = "default_snapshot_log_entries_max")]
    pub snapshot_log_entries_max: u64,
    /// Threads that serve client and peer connections on each node. Default: one per core.
    /// Nodes that share a machine do better with fewer (`kvs cluster-config` divides the cores
    /// among its nodes): surplus threads only park and wake one another. With one, the node is
    /// a single event loop: the driver runs on that thread too, and only the disk has threads
    /// of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_threads: Option<usize>,
    /// Hand each shard's leadership back to its preferred replica (the first of its replicas,
    /// which the placement spreads evenly over the nodes) whenever that replica is up and
    /// caught up, so that leaders, and with them the work, stay spread out after elections.
    /// Default on.
    #[serde(default = "default_balance_leaders")]
    pub balance_leaders: bool,
    /// Protective limits on client traffic.
    #[serde(default)]
    pub limits: Limits,
}

/// One node's addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's id (non-zero, unique).
    pub id: u64,
    /// Where the node listens for clients (RESP).
    pub client_addr: SocketAddr,
    /// Where the node listens for its peers.
    pub peer_addr: SocketAddr,
    /// The client address other parties should use (in `MOVED`, `CLUSTER SLOTS/SHARDS/NODES`).
    /// Default: `client_addr`. Required when `client_addr` is unspecified (0.0.0.0 or ::).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_client_addr: Option<SocketAddr>,
    /// The address THIS node dials to reach node `j`, by `j`'s id (the harness puts a proxy on
    /// every directed link). A node not listed is dialled at its `peer_addr`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub peer_routes: BTreeMap<u64, SocketAddr>,
}

impl NodeConfig {
    /// The node's id as the Raft core's type.
    #[must_use]
    pub fn node_id(&self) -> NodeId {
        NodeId(self.id)
    }

    /// The client address to tell others about: `advertise_client_addr`, else `client_addr`.
    #[must_use]
    pub fn advertised_client_addr(&self) -> SocketAddr {
        self.advertise_client_addr.unwrap_or(self.client_addr)
    }
}

/// Limits that protect a node from its clients. Each has a defined answer when hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Bytes of one request frame; beyond it the server answers a protocol error and closes the
    /// connection. Default 4 MiB.
    #[serde(default = "default_request_bytes_max")]
    pub request_bytes_max: usize,
    /// Bytes of one stored value (and `IFEQ` value); beyond it the request gets an error and the
    /// connection stays open. At most `request_bytes_max`. Default 1 MiB.
    #[serde(default = "default_value_bytes_max")]
    pub value_bytes_max: usize,
    /// Requests read from one connection but not yet answered; at the limit the server stops
    /// reading that connection until replies drain. Default 1024.
    #[serde(default = "default_pending_requests_max")]
    pub pending_requests_max: usize,
    /// Open client connections per node; a connection beyond it gets an error and is closed.
    /// Default 4096.
    #[serde(default = "default_connections_max")]
    pub connections_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_bytes_max: default_request_bytes_max(),
            value_bytes_max: default_value_bytes_max(),
            pending_requests_max: default_pending_requests_max(),
            connections_max: default_connections_max(),
        }
    }
}

impl Limits {
    /// The RESP parser's limits for requests: `request_bytes_max` for the whole request and for
    /// any one bulk string (so an oversized value gets the clearer "value too large" error from
    /// the value check, not a protocol error), [`REQUEST_ARRAY_LEN_MAX`] arguments and
    /// [`REQUEST_NESTING_MAX`] levels.
    #[must_use]
    pub fn frame_limits(&self) -> FrameLimits {
        FrameLimits {
            request_bytes_max: self.request_bytes_max,
            bulk_bytes_max: self.request_bytes_max,
            array_len_max: REQUEST_ARRAY_LEN_MAX,
            nesting_max: REQUEST_NESTING_MAX,
        }
    }
}

fn default_tick_ms() -> u64 {
    10
}
fn default_balance_leaders() -> bool {
    true
}
fn default_heartbeat_ticks() -> u32 {
    5
}
fn default_election_ticks() -> u32 {
    50
}
fn default_fsync() -> bool {
    true
}
fn default_snapshot_log_entries_max() -> u64 {
    10_000
}
fn default_request_bytes_max() -> usize {
    4 << 20
}
fn default_value_bytes_max() -> usize {
    1 << 20
}
fn default_pending_requests_max() -> usize {
    1024
}
fn default_connections_max() -> usize {
    4096
}

/// One invalid value: the path of the field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, e.g. `nodes[1].peer_addr` or `limits.value_bytes_max`.
    pub field: String,
    /// What is wrong, e.g. `duplicate address 127.0.0.1:7001 (also nodes[0].client_addr)`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not valid YAML for this schema (syntax, wrong type, unknown or missing field).
    /// The message carries the field path and position serde_yaml_ng reports.
    #[error("{0}")]
    Parse(String),
    /// Values that parse but break a rule; every one found, in field order.
    #[error("{}", join_lines(.0))]
    Invalid(Vec<FieldError>),
}

fn join_lines(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ClusterConfig {
    /// Reads, parses and validates the YAML file at `path`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`], [`ConfigError::Parse`] or [`ConfigError::Invalid`].
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ClusterConfig::from_yaml_str(&text)
    }

    /// Parses and validates YAML text.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] or [`ConfigError::Invalid`].
    pub fn from_yaml_str(text: &str) -> Result<ClusterConfig, ConfigError> {
        let config: ClusterConfig =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration as YAML that [`ClusterConfig::from_yaml_str`] accepts, every field
    /// written out.
    #[must_use]
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("plain data serializes to YAML")
    }

    /// Checks every rule and reports all violations, each naming its field.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] listing every bad value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        let mut bad = |field: String, message: String| errors.push(FieldError { field, message });

        if self.nodes.is_empty() {
            bad("nodes".into(), "must list at least one node".into());
        }
        let mut ids: BTreeMap<u64, usize> = BTreeMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if node.id == 0 {
                bad(format!("nodes[{i}].id"), "must not be 0".into());
            } else if let Some(first) = ids.get(&node.id) {
                bad(
                    format!("nodes[{i}].id"),
                    format!("duplicate id {} (also nodes[{first}].id)", node.id),
                );
            } else {
                ids.insert(node.id, i);
            }
        }
        // Every listening address, and every advertised one, must be distinct.
        let mut listen: BTreeMap<SocketAddr, String> = BTreeMap::new();
        let mut advertised: BTreeMap<SocketAddr, String> = BTreeMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for (name, addr) in [
                ("client_addr", node.client_addr),
                ("peer_addr", node.peer_addr),
            ] {
                let field = format!("nodes[{i}].{name}");
                if addr.port() == 0 {
                    bad(field.clone(), "port 0 is not allowed".into());
                }
                if let Some(other) = listen.get(&addr) {
                    bad(field, format!("duplicate address {addr} (also {other})"));
                } else {
                    listen.insert(addr, field);
                }
            }
            let adv = node.advertised_client_addr();
            let adv_field = format!("nodes[{i}].advertise_client_addr");
            if adv.ip().is_unspecified() || adv.port() == 0 {
                let message = if node.advertise_client_addr.is_some() {
                    format!("{adv} is not an address clients can reach")
                } else {
                    format!(
                        "required because client_addr {adv} is not an address clients can reach"
                    )
                };
                bad(adv_field, message);
            } else if let Some(other) = advertised.get(&adv) {
                bad(
                    adv_field,
                    format!("duplicate advertised address {adv} (also {other})"),
                );
            } else {
                advertised.insert(adv, adv_field);
            }
            for (to, addr) in &node.peer_routes {
                let field = format!("nodes[{i}].peer_routes.{to}");
                if *to == node.id {
                    bad(field, "a route to the node itself".into());
                } else if !ids.contains_key(to) {
                    bad(field, format!("unknown node id {to}"));
                } else if addr.port() == 0 || addr.ip().is_unspecified() {
                    bad(field, format!("{addr} is not an address a node can dial"));
                }
            }
        }
        if self.shard_count == 0 || self.shard_count > u32::from(SLOT_COUNT) {
            bad(
                "shard_count".into(),
                format!("{} is not in 1..=16384", self.shard_count),
            );
        }
        if self.replica_count == 0 {
            bad("replica_count".into(), "must be at least 1".into());
        } else if self.replica_count > self.nodes.len() {
            bad(
                "replica_count".into(),
                format!(
                    "{} exceeds the {} nodes",
                    self.replica_count,
                    self.nodes.len()
                ),
            );
        }
        if self.data_dir.as_os_str().is_empty() {
            bad("data_dir".into(), "must not be empty".into());
        }
        if self.tick_ms == 0 || self.tick_ms > TICK_MS_MAX {
            bad(
                "tick_ms".into(),
                format!("{} is not in 1..={TICK_MS_MAX}", self.tick_ms),
            );
        }
        if self.heartbeat_ticks == 0 {
            bad("heartbeat_ticks".into(), "must be at least 1".into());
        }
        if self.election_ticks <= self.heartbeat_ticks {
            bad(
                "election_ticks".into(),
                format!(
                    "must be greater than heartbeat_ticks ({})",
                    self.heartbeat_ticks
                ),
            );
        }
        if self.snapshot_log_entries_max == 0 {
            bad(
                "snapshot_log_entries_max".into(),
                "must be at least 1".into(),
            );
        }
        if self.io_threads == Some(0) {
            bad("io_threads".into(), "must be at least 1".into());
        }
        let limits = &self.limits;
        for (name, value) in [
            ("request_bytes_max", limits.request_bytes_max),
            ("value_bytes_max", limits.value_bytes_max),
            ("pending_requests_max", limits.pending_requests_max),
            ("connections_max", limits.connections_max),
        ] {
            if value == 0 {
                bad(format!("limits.{name}"), "must be at least 1".into());
            }
        }
        if limits.value_bytes_max > limits.request_bytes_max {
            bad(
                "limits.value_bytes_max".into(),
                format!(
                    "{} exceeds limits.request_bytes_max {}",
                    limits.value_bytes_max, limits.request_bytes_max
                ),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }

    /// The node with this id.
    #[must_use]
    pub fn node(&self, id: NodeId) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.id == id.0)
    }

    /// Every node id, in file order.
    #[must_use]
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(NodeConfig::node_id).collect()
    }

    /// Every node's advertised client address, by id (for `MOVED` and the `CLUSTER` replies).
    #[must_use]
    pub fn advertised_client_addrs(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.nodes
            .iter()
            .map(|n| (n.node_id(), n.advertised_client_addr()))
            .collect()
    }

    /// The address node `from` dials to reach node `to`: `from`'s `peer_routes` entry for `to`,
    /// else `to`'s `peer_addr`. `None` if either node is unknown.
    #[must_use]
    pub fn route_to(&self, from: NodeId, to: NodeId) -> Option<SocketAddr> {
        let from_node = self.node(from)?;
        let to_node = self.node(to)?;
        Some(
            from_node
                .peer_routes
                .get(&to.0)
                .copied()
                .unwrap_or(to_node.peer_addr),
        )
    }

    /// Node `id`'s own data directory: `<data_dir>/node-<id>`.
    #[must_use]
    pub fn data_dir_for(&self, id: NodeId) -> PathBuf {
        self.data_dir.join(format!("node-{}", id.0))
    }

    /// The length of one tick.
    #[must_use]
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    /// The shard map this configuration describes.
    ///
    /// # Errors
    ///
    /// [`ShardMapError`] if the counts or ids are invalid (never after a successful
    /// [`ClusterConfig::validate`]).
    pub fn shard_map(&self) -> Result<ShardMap, ShardMapError> {
        ShardMap::new(self.shard_count, self.replica_count, &self.node_ids())
    }

    /// A validated configuration for a cluster on 127.0.0.1, as `kvs cluster-config` prints:
    /// node `i` in `1..=node_count` has id `i`, client port `port_base + i - 1` and peer port
    /// `port_base + i - 1 + 10000` (Redis Cluster's bus-port convention: base 7000 gives clients
    /// 7000, 7001, 7002 and peers 17000, 17001, 17002); every other setting is its default.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] if a port would pass 65535 (field `port_base`) or the counts are
    /// invalid.
    pub fn local(
        node_count: u64,
        shard_count: u32,
        replica_count: usize,
        port_base: u16,
        data_dir: PathBuf,
    ) -> Result<ClusterConfig, ConfigError> {
        let top =
            u64::from(port_base) + node_count.saturating_sub(1) + u64::from(LOCAL_PEER_PORT_OFFSET);
        if top > u64::from(u16::MAX) || port_base == 0 {
            return Err(ConfigError::Invalid(vec![FieldError {
                field: "port_base".into(),
                message: format!(
                    "{port_base} with {node_count} nodes needs ports up to {top}, \
                     but ports are 1..=65535"
                ),
            }]));
        }
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let nodes = (1..=node_count)
            .map(|i| {
                // Cannot overflow: checked against `top` above.
                let client_port = port_base + (i - 1) as u16;
                NodeConfig {
                    id: i,
                    client_addr: SocketAddr::new(localhost, client_port),
                    peer_addr: SocketAddr::new(localhost, client_port + LOCAL_PEER_PORT_OFFSET),
                    advertise_client_addr: None,
                    peer_routes: BTreeMap::new(),
                }
            })
            .collect();
        let config = ClusterConfig {
            nodes,
            shard_count,
            replica_count,
            data_dir,
            tick_ms: default_tick_ms(),
            heartbeat_ticks: default_heartbeat_ticks(),
            election_ticks: default_election_ticks(),
            fsync: default_fsync(),
            snapshot_log_entries_max: default_snapshot_log_entries_max(),
            io_threads: Some(local_io_threads(node_count)),
            balance_leaders: default_balance_leaders(),
            limits: Limits::default(),
        };
        config.validate()?;
        Ok(config)
    }
}

/// The I/O threads each of `node_count` nodes on this machine gets: the cores shared out, at
/// least one each.
fn local_io_threads(node_count: u64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cores / usize::try_from(node_count.max(1)).unwrap_or(usize::MAX)).max(1)
}

#[cfg(test)]
mod tests;

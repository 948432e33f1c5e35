//! `kvs status`: every shard's leader, term and commit index, and the nodes that do not answer.
//! It learns the nodes from `CLUSTER NODES` of the seed, then asks each for `INFO raft`.

use crate::api::frame::Frame;
use crate::client::ClusterClient;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

/// One line of `INFO raft` about a shard, as one node sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardLine {
    /// Shard id.
    pub shard: u32,
    /// The fields after the colon (`role=leader,term=3,...`).
    pub fields: BTreeMap<String, String>,
}

impl ShardLine {
    /// Whether the node that wrote the line leads the shard.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.fields.get("role").map(String::as_str) == Some("leader")
    }
}

/// Asks the node at `addr` for `INFO raft`; `None` when it does not answer with one.
pub async fn info_raft(client: &ClusterClient, addr: SocketAddr) -> Option<Vec<ShardLine>> {
    match client.command_at(addr, &[b"INFO", b"raft"]).await {
        Ok(Frame::Bulk(b)) => Some(parse_info_raft(&String::from_utf8_lossy(&b))),
        _ => None,
    }
}

/// Parses the `shard_N:k=v,k=v` lines of an `INFO raft` reply.
#[must_use]
pub fn parse_info_raft(text: &str) -> Vec<ShardLine> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("shard_")?;
            let (id, fields) = rest.split_once(':')?;
            Some(ShardLine {
                shard: id.parse().ok()?,
                fields: fields
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })
        })
        .collect()
}

/// Builds the status report.
///
/// # Errors
/// The seed node could not be asked for the node list.
pub async fn cluster_status(client: &ClusterClient, seed: &str) -> anyhow::Result<String> {
    let seed_addr: SocketAddr = seed
        .parse()
        .map_err(|_| anyhow::anyhow!("--cluster {seed}: expected ip:port"))?;
    let nodes = match client.command_at(seed_addr, &[b"CLUSTER", b"NODES"]).await {
        Ok(Frame::Bulk(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(other) => anyhow::bail!("unexpected CLUSTER NODES reply from {seed}: {other:?}"),
        Err(e) => anyhow::bail!("cannot ask {seed} for the node list: {e}"),
    };
    // Lines: `<id> <ip:port@cport> <flags> ...`; the 40-hex-digit id is our node id in hex.
    let mut members: Vec<(u64, SocketAddr)> = Vec::new();
    for line in nodes.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 2 {
            continue;
        }
        let addr = f[1].split('@').next().and_then(|a| a.parse().ok());
        if let (Some(addr), Ok(id)) = (addr, u64::from_str_radix(f[0], 16)) {
            members.push((id, addr));
        }
    }
    // Shards are listed in id order; their slot ranges come from the same seed.
    let ranges: Vec<String> = match client.command_at(seed_addr, &[b"CLUSTER", b"SHARDS"]).await {
        Ok(f) => crate::api::cmd::cluster::parse_shards_reply(&f)
            .map(|routes| {
                routes
                    .iter()
                    .map(|r| {
                        r.slots
                            .iter()
                            .map(|s| format!("{}-{}", s.start.0, s.end.0))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let mut unreachable = Vec::new();
    // shard -> (leader id, term, commit) as reported by the node that leads it.
    let mut shards: BTreeMap<u32, (u64, String, String, String)> = BTreeMap::new();
    let mut seen: BTreeMap<u32, String> = BTreeMap::new();
    for (id, addr) in &members {
        let Some(lines) = info_raft(client, *addr).await else {
            unreachable.push(format!("node {id} ({addr})"));
            continue;
        };
        for line in lines {
            let get = |k: &str| line.fields.get(k).cloned().unwrap_or_default();
            let slots = ranges.get(line.shard as usize).cloned().unwrap_or_default();
            seen.entry(line.shard).or_insert_with(|| slots.clone());
            if line.is_leader() {
                shards.insert(line.shard, (*id, get("term"), get("commit"), slots));
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<7} {:<13} {:<8} {:<6} commit",
        "shard", "slots", "leader", "term"
    );
    for (shard, slots) in &seen {
        match shards.get(shard) {
            Some((leader, term, commit, slots)) => {
                let _ = writeln!(out, "{shard:<7} {slots:<13} {leader:<8} {term:<6} {commit}");
            }
            None => {
                let _ = writeln!(out, "{shard:<7} {slots:<13} {:<8} {:<6} -", "none", "-");
            }
        }
    }
    if unreachable.is_empty() {
        let _ = writeln!(out, "all {} nodes reachable", members.len());
    } else {
        let _ = writeln!(out, "unreachable: {}", unreachable.join(", "));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_raft_lines_parse() {
        let lines =
            parse_info_raft("# Raft\r\nshards_hosted:2\r\nshard_3:role=leader,term=4,leader=2\r\n");
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].shard, 3);
        assert_eq!(lines[0].fields["role"], "leader");
        assert_eq!(lines[0].fields["term"], "4");
    }
}

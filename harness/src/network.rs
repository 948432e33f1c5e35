//! The cluster's network as the harness sees it: one proxy per directed node-to-node link and
//! one per client-to-node link, and the policy each link should have now.
//!
//! The policy of a link is computed from three layers, so that faults compose and heal cleanly:
//! the partition's cut links (blackholed), the policy of every node-to-node link (`slow` or
//! `flaky`), and which nodes are down (a killed node's client link refuses connections, as a
//! dead process's port would; through a proxy, a client would otherwise connect, write, and
//! only then see the connection reset, and a write would be "outcome unknown" instead of
//! "definitely not applied").

use crate::nemesis::{Link, NodeId};
use crate::net::{Framing, LinkPolicy, Proxy};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;

/// What a node listens on (the proxies forward there).
#[derive(Clone, Copy, Debug)]
pub struct NodeAddrs {
    /// The node's id.
    pub id: NodeId,
    /// Where it serves clients.
    pub client: SocketAddr,
    /// Where it accepts its peers.
    pub peer: SocketAddr,
}

#[derive(Default)]
struct LinkState {
    /// Cut node-to-node links.
    cuts: BTreeSet<Link>,
    /// Every node-to-node link that is not cut.
    peer_policy: Option<LinkPolicy>,
    /// What a node-to-node link does when no fault says otherwise (the run's `--peer-latency`);
    /// a heal returns links to it.
    base_policy: Option<LinkPolicy>,
    /// Nodes that are not running.
    down: BTreeSet<NodeId>,
}

/// Every proxy of a cluster.
pub struct Network {
    peers: BTreeMap<Link, Proxy>,
    clients: BTreeMap<NodeId, Proxy>,
    state: Mutex<LinkState>,
}

impl Network {
    /// Starts a proxy for every directed link between `nodes` (to the target's peer address) and
    /// one in front of each node's client address. Each proxy's randomness is drawn from
    /// `seed`.
    ///
    /// # Errors
    /// A proxy could not listen.
    pub async fn start(nodes: &[NodeAddrs], seed: u64) -> std::io::Result<Network> {
        let mut rng = workloads::Rng::new(seed);
        let mut peers = BTreeMap::new();
        for from in nodes {
            for to in nodes {
                if from.id == to.id {
                    continue;
                }
                let name = format!("peer {}->{}", from.id, to.id);
                let proxy =
                    Proxy::start(name, to.peer, Framing::PeerFrames, rng.next_u64()).await?;
                peers.insert((from.id, to.id), proxy);
            }
        }
        let mut clients = BTreeMap::new();
        for node in nodes {
            let name = format!("client->{}", node.id);
            let proxy = Proxy::start(name, node.client, Framing::Bytes, rng.next_u64()).await?;
            clients.insert(node.id, proxy);
        }
        Ok(Network {
            peers,
            clients,
            state: Mutex::new(LinkState::default()),
        })
    }

    /// The address node `from` dials to reach node `to`.
    ///
    /// # Panics
    /// If the link is unknown.
    #[must_use]
    pub fn peer_route(&self, from: NodeId, to: NodeId) -> SocketAddr {
        self.peers[&(from, to)].addr()
    }

    /// The address clients use for node `node` (the one it advertises).
    ///
    /// # Panics
    /// If the node is unknown.
    #[must_use]
    pub fn client_addr(&self, node: NodeId) -> SocketAddr {
        self.clients[&node].addr()
    }

    /// Every node's client address, by node.
    #[must_use]
    pub fn client_endpoints(&self) -> Vec<(NodeId, SocketAddr)> {
        self.clients.iter().map(|(n, p)| (*n, p.addr())).collect()
    }

    /// Blackholes `cuts` (replacing any earlier partition).
    pub fn partition(&self, cuts: &BTreeSet<Link>) {
        self.lock().cuts.clone_from(cuts);
        self.apply();
    }

    /// Gives every node-to-node link that is not cut `policy` (`None`: pass).
    pub fn set_peer_policy(&self, policy: Option<LinkPolicy>) {
        self.lock().peer_policy = policy;
        self.apply();
    }

    /// Marks `node` down (its client link refuses) or up.
    pub fn set_down(&self, node: NodeId, down: bool) {
        {
            let mut st = self.lock();
            if down {
                st.down.insert(node);
            } else {
                st.down.remove(&node);
            }
        }
        self.apply();
    }

    /// Sets what node-to-node links do when no fault is in force (`None`: pass).
    pub fn set_base_peer_policy(&self, policy: Option<LinkPolicy>) {
        self.lock().base_policy = policy;
        self.apply();
    }

    /// Clears partitions and link policies (which nodes are down is the process faults' to
    /// heal).
    pub fn heal(&self) {
        {
            let mut st = self.lock();
            st.cuts.clear();
            st.peer_policy = None;
        }
        self.apply();
    }

    /// Closes every proxy.
    pub fn close(&self) {
        for p in self.peers.values().chain(self.clients.values()) {
            p.close();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().expect("network state lock")
    }

    /// Gives every proxy the policy the layers say, touching only those that change.
    fn apply(&self) {
        let st = self.lock();
        for (link, proxy) in &self.peers {
            let want = if st.cuts.contains(link) {
                LinkPolicy::drop()
            } else {
                st.peer_policy
                    .clone()
                    .or_else(|| st.base_policy.clone())
                    .unwrap_or_else(LinkPolicy::pass)
            };
            if proxy.policy() != want {
                proxy.set_policy(want);
            }
        }
        for (node, proxy) in &self.clients {
            let want = if st.down.contains(node) {
                LinkPolicy::refuse()
            } else {
                LinkPolicy::pass()
            };
            if proxy.policy() != want {
                proxy.set_policy(want);
            }
        }
    }
}

/// Points every node of `config` at `network`: its peers through their proxies (`peer_routes`)
/// and clients to its client proxy (`advertise_client_addr`).
pub fn route_through(config: &mut kvs::config::ClusterConfig, network: &Network) {
    let ids: Vec<NodeId> = config.nodes.iter().map(|n| n.id).collect();
    for node in &mut config.nodes {
        node.advertise_client_addr = Some(network.client_addr(node.id));
        node.peer_routes = ids
            .iter()
            .filter(|j| **j != node.id)
            .map(|j| (*j, network.peer_route(node.id, *j)))
            .collect();
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.close();
    }
}

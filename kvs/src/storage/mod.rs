//! Durable storage: the node's write-ahead log shared by every Raft group it hosts, and the
//! snapshot files. Depends on nothing in `kvs` but the Raft core's types.

//! The time-ordered list of call and return entries the search walks, with lift and unlift.
//!
//! A doubly linked list in an arena ("dancing links"): lifting an operation unlinks its call and
//! return entries but leaves their own links intact, so unlifting in reverse order restores them
//! exactly. Operations with an unknown outcome have no return entry: their return is at infinity.

/// Per-operation times the list is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpTimes {
    /// Invoke time in nanoseconds.
    pub call_ns: u64,
    /// Return time in nanoseconds, `None` for infinity (outcome unknown).
    pub return_ns: Option<u64>,
}

/// Index of a node in the arena.
pub type NodeIndex = u32;

const NIL: NodeIndex = NodeIndex::MAX;
const HEAD: NodeIndex = 0;

#[derive(Debug, Clone, Copy)]
struct Node {
    prev: NodeIndex,
    next: NodeIndex,
    op: u32,
    // For a call entry: its return entry, or NIL if it has none. For a return entry: NIL.
    partner: NodeIndex,
    is_call: bool,
}

/// The entry list of one sub-history.
#[derive(Debug, Clone)]
pub struct EntryList {
    // nodes[0] is the head sentinel.
    nodes: Vec<Node>,
}

impl EntryList {
    /// Builds the list: entries ordered by time, returns before calls at equal times (an operation
    /// that returned at t precedes one invoked at t), ties broken by operation index.
    pub fn new(times: &[OpTimes]) -> Self {
        // (time, 0 = return / 1 = call, op)
        let mut order: Vec<(u64, u8, u32)> = Vec::with_capacity(times.len() * 2);
        for (op, t) in times.iter().enumerate() {
            let op = u32::try_from(op).expect("fewer than 2^32 operations per key");
            order.push((t.call_ns, 1, op));
            if let Some(r) = t.return_ns {
                order.push((r, 0, op));
            }
        }
        order.sort_unstable();
        let mut nodes = Vec::with_capacity(order.len() + 1);
        nodes.push(Node {
            prev: NIL,
            next: NIL,
            op: u32::MAX,
            partner: NIL,
            is_call: false,
        });
        let mut call_node = vec![NIL; times.len()];
        for (i, &(_, kind, op)) in order.iter().enumerate() {
            let index = (i + 1) as NodeIndex;
            let is_call = kind == 1;
            nodes.push(Node {
                prev: index - 1,
                next: if i + 1 < order.len() { index + 1 } else { NIL },
                op,
                partner: NIL,
                is_call,
            });
            if is_call {
                call_node[op as usize] = index;
            } else {
                let call = call_node[op as usize];
                debug_assert_ne!(call, NIL, "a call precedes its return");
                nodes[call as usize].partner = index;
            }
        }
        if !order.is_empty() {
            nodes[HEAD as usize].next = 1;
        }
        EntryList { nodes }
    }

    /// The first entry still in the list, `None` if it is empty.
    pub fn first(&self) -> Option<NodeIndex> {
        self.next(HEAD)
    }

    /// The entry after `node`, `None` at the end.
    pub fn next(&self, node: NodeIndex) -> Option<NodeIndex> {
        let next = self.nodes[node as usize].next;
        (next != NIL).then_some(next)
    }

    /// True for a call entry, false for a return entry.
    pub fn is_call(&self, node: NodeIndex) -> bool {
        self.nodes[node as usize].is_call
    }

    /// The operation an entry belongs to.
    pub fn op(&self, node: NodeIndex) -> usize {
        self.nodes[node as usize].op as usize
    }

    fn unlink(&mut self, node: NodeIndex) {
        let Node { prev, next, .. } = self.nodes[node as usize];
        self.nodes[prev as usize].next = next;
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
    }

    fn relink(&mut self, node: NodeIndex) {
        let Node { prev, next, .. } = self.nodes[node as usize];
        self.nodes[prev as usize].next = node;
        if next != NIL {
            self.nodes[next as usize].prev = node;
        }
    }

    /// Removes a call entry and its return entry (the operation is now linearized).
    pub fn lift(&mut self, call: NodeIndex) {
        debug_assert!(self.is_call(call));
        self.unlink(call);
        let partner = self.nodes[call as usize].partner;
        if partner != NIL {
            self.unlink(partner);
        }
    }

    /// Undoes the most recent [`EntryList::lift`] still in effect, which must be of `call`.
    pub fn unlift(&mut self, call: NodeIndex) {
        debug_assert!(self.is_call(call));
        let partner = self.nodes[call as usize].partner;
        if partner != NIL {
            self.relink(partner);
        }
        self.relink(call);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(list: &EntryList) -> Vec<(usize, bool)> {
        let mut out = Vec::new();
        let mut node = list.first();
        while let Some(n) = node {
            out.push((list.op(n), list.is_call(n)));
            node = list.next(n);
        }
        out
    }

    #[test]
    fn order_puts_returns_before_calls_at_equal_times_and_skips_infinite_returns() {
        let list = EntryList::new(&[
            OpTimes {
                call_ns: 1,
                return_ns: Some(5),
            },
            OpTimes {
                call_ns: 5,
                return_ns: Some(6),
            },
            OpTimes {
                call_ns: 2,
                return_ns: None,
            },
        ]);
        assert_eq!(
            walk(&list),
            vec![(0, true), (2, true), (0, false), (1, true), (1, false)]
        );
    }

    #[test]
    fn lift_and_unlift_restore_the_list() {
        let times = [
            OpTimes {
                call_ns: 1,
                return_ns: Some(4),
            },
            OpTimes {
                call_ns: 2,
                return_ns: Some(3),
            },
            OpTimes {
                call_ns: 5,
                return_ns: None,
            },
        ];
        let mut list = EntryList::new(&times);
        let before = walk(&list);
        let call0 = list.first().unwrap();
        let call1 = list.next(call0).unwrap();
        list.lift(call1);
        assert_eq!(walk(&list), vec![(0, true), (0, false), (2, true)]);
        list.lift(call0);
        assert_eq!(walk(&list), vec![(2, true)]);
        list.unlift(call0);
        list.unlift(call1);
        assert_eq!(walk(&list), before);
    }
}

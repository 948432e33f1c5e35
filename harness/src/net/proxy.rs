//! One TCP proxy per directed link, which the nemesis can break: [`Proxy`].
//!
//! The harness puts a proxy on every node-to-node link (node i dials proxy(i, j), which forwards
//! to node j's peer port) and on every client-to-node link. A proxy listens on a loopback port
//! the OS picks and forwards each accepted connection to its target; [`Proxy::set_policy`]
//! changes what it does to them, at once, for open and new connections alike.
//!
//! How a refusal works without root: a *holder* socket is bound to the port with `SO_REUSEPORT`
//! (and not `SO_REUSEADDR`) and never listens; the real listener binds the same port with
//! `SO_REUSEPORT`. To refuse, the proxy closes the listener: connects then get `ECONNREFUSED`
//! while the holder keeps the port reserved (no other socket can take it, and the kernel never
//! hands a bound port out as an ephemeral one). At the heal a new listener binds the same port.
//! Both happen inside `set_policy`, under one lock, so when it returns new connects already see
//! the new state.
//!
//! Each accepted connection gets one task that owns both sockets and drives two [`Link`]s (the
//! pure decisions, in `link.rs`) with non-blocking reads and writes: one wake-up per chunk, a
//! reused read buffer, no copy on the pass path, `TCP_NODELAY` on both sides. The upstream is
//! dialled lazily: a connection accepted during a drop sees no upstream until the heal, as a
//! blackholed SYN would. A policy change bumps an epoch and wakes every connection's task through
//! a waker slot of its own, so a task's usual wait takes no shared lock. Everything here is I/O;
//! the policy's meaning lives in `policy.rs` and `link.rs`.

use super::link::{Link, LinkCounts, WRITE_SLICES_MAX};
pub use super::policy::{Cut, LinkPolicy};
use bytes::{Bytes, BytesMut};
use kvs::raft::rand::SplitMix64;
use kvs::sockets::read_draining;
use serde::Serialize;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io::{self, ErrorKind, IoSlice};
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Sleep;

/// The most a connection's task reads at once in one direction (its reusable buffer's size).
pub const READ_CHUNK_BYTES_MAX: usize = 64 * 1024;

/// Connections a proxy serves at once; one more is accepted and reset at once (counted as
/// refused).
pub const CONNECTIONS_MAX: usize = 4096;

/// How long a connection's task waits to dial the upstream before it resets the connection.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(1);

/// How long closing waits for connection tasks to reset their sockets before aborting them.
pub const CLOSE_WAIT_MAX: Duration = Duration::from_secs(1);

/// Connections the kernel queues on a proxy's port before the proxy accepts them; more are
/// refused by the kernel.
const LISTEN_BACKLOG_MAX: u32 = 1024;

/// Pause before trying again to listen after a failure to (which should never happen: the
/// holder keeps the port ours).
const RELISTEN_RETRY: Duration = Duration::from_millis(20);

/// Pause after a failed `accept` (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// What a proxied link carries, which says what may be done to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Framing {
    /// An opaque byte stream (RESP from clients): chunks can be delayed or lost, never framed.
    Bytes,
    /// The kvs peer protocol from the dialling side: frames of `u32 big-endian length |
    /// payload`, the first a `Hello`. Whole frames can be lost, duplicated and reordered. The
    /// reverse direction is carried as bytes.
    PeerFrames,
}

/// What a proxy has done since it started; totals, both directions together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProxyStats {
    /// Connections accepted from the listener.
    pub connections_accepted: u64,
    /// Accepted connections turned away at once: the upstream could not be dialled, the link
    /// was being refused, or [`CONNECTIONS_MAX`] were open.
    pub connections_refused: u64,
    /// Connections the proxy reset after serving them (a refusal, a heal after loss, an
    /// upstream reset, an undecodable stream, the proxy closing).
    pub connections_reset: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// Bytes written to either side.
    pub bytes_forwarded: u64,
    /// Bytes read and thrown away (a drop, or lost frames).
    pub bytes_dropped: u64,
    /// Frames queued to be written (each duplicate copy counted too).
    pub frames_forwarded: u64,
    /// Frames lost.
    pub frames_dropped: u64,
    /// Extra copies of frames sent.
    pub frames_duplicated: u64,
    /// Frames held back for a later frame to overtake.
    pub frames_reordered: u64,
}

/// The proxy's live counters, shared by its tasks.
#[derive(Debug, Default)]
struct Counters {
    connections_accepted: AtomicU64,
    connections_refused: AtomicU64,
    connections_reset: AtomicU64,
    connections_open: AtomicU64,
    bytes_forwarded: AtomicU64,
    bytes_dropped: AtomicU64,
    frames_forwarded: AtomicU64,
    frames_dropped: AtomicU64,
    frames_duplicated: AtomicU64,
    frames_reordered: AtomicU64,
}

impl Counters {
    fn add(&self, counts: LinkCounts) {
        for (counter, n) in [
            (&self.bytes_dropped, counts.bytes_dropped),
            (&self.frames_forwarded, counts.frames_forwarded),
            (&self.frames_dropped, counts.frames_dropped),
            (&self.frames_duplicated, counts.frames_duplicated),
            (&self.frames_reordered, counts.frames_reordered),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    fn snapshot(&self) -> ProxyStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ProxyStats {
            connections_accepted: get(&self.connections_accepted),
            connections_refused: get(&self.connections_refused),
            connections_reset: get(&self.connections_reset),
            connections_open: get(&self.connections_open),
            bytes_forwarded: get(&self.bytes_forwarded),
            bytes_dropped: get(&self.bytes_dropped),
            frames_forwarded: get(&self.frames_forwarded),
            frames_dropped: get(&self.frames_dropped),
            frames_duplicated: get(&self.frames_duplicated),
            frames_reordered: get(&self.frames_reordered),
        }
    }
}

/// What every task of a proxy watches.
#[derive(Clone, Debug)]
struct Control {
    policy: LinkPolicy,
    /// The proxy is closing: every task resets its connection and ends.
    closed: bool,
}

/// The proxy's port.
struct Port {
    /// Keeps the port reserved while the listener is closed. `None` once the proxy closed.
    holder: Option<TcpSocket>,
    /// Invariant: `Some` iff the holder is, the policy does not refuse, and listening on the
    /// port worked (it is retried if not).
    listener: Option<TcpListener>,
}

/// What the handle and the tasks of one proxy share.
struct Shared {
    name: String,
    target: SocketAddr,
    framing: Framing,
    addr: SocketAddr,
    /// The runtime the proxy's sockets are registered with, entered to listen again from
    /// `set_policy` whatever thread calls it.
    runtime: Handle,
    control: watch::Sender<Control>,
    /// Bumped after every change of `control`; a connection compares it with the last value it
    /// took in, so its usual wait costs one atomic load and no lock.
    epoch: AtomicU64,
    /// Where each connection's task leaves its waker. Invariant: at most `CONNECTIONS_MAX` live
    /// entries (dead ones are pruned as new ones come).
    wakes: Mutex<Vec<Weak<WakeSlot>>>,
    /// Lock order: `port`, then a borrow of `control`, then `wakes`, then a `WakeSlot`.
    port: Mutex<Port>,
    counters: Counters,
}

impl Shared {
    fn port(&self) -> MutexGuard<'_, Port> {
        // The port holds two sockets and no invariant a panic could break halfway.
        self.port.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True if the port should be listening but is not (a failed listen, to retry).
    fn wants_listener(&self) -> bool {
        let port = self.port();
        let control = self.control.borrow();
        port.holder.is_some()
            && port.listener.is_none()
            && !control.closed
            && control.policy.cut != Cut::Refuse
    }

    /// Listens again if the port should be listening; called with the port locked.
    fn ensure_listener(&self, port: &mut Port) {
        let wanted = {
            let control = self.control.borrow();
            !control.closed && control.policy.cut != Cut::Refuse
        };
        if !wanted || port.holder.is_none() || port.listener.is_some() {
            return;
        }
        let _runtime = self.runtime.enter();
        match listen_on(self.addr) {
            Ok(listener) => port.listener = Some(listener),
            Err(error) => {
                tracing::warn!(proxy = %self.name, addr = %self.addr, %error, "cannot listen again; retrying");
            }
        }
    }

    /// Publishes a change of `control` to the connections: a new epoch, and every task woken.
    fn wake_connections(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let wakes = self.wakes.lock().unwrap_or_else(PoisonError::into_inner);
        for wake in wakes.iter().filter_map(Weak::upgrade) {
            wake.wake();
        }
    }

    /// Lets the proxy wake a new connection's task.
    fn register(&self, wake: &Arc<WakeSlot>) {
        let mut wakes = self.wakes.lock().unwrap_or_else(PoisonError::into_inner);
        wakes.retain(|w| w.strong_count() > 0);
        wakes.push(Arc::downgrade(wake));
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        match &self.port().listener {
            Some(listener) => listener.poll_accept(cx),
            // A change of policy wakes the accept loop through the control channel.
            None => Poll::Pending,
        }
    }
}

/// A TCP proxy on one directed link; see the module docs. Closes on drop.
pub struct Proxy {
    shared: Arc<Shared>,
    /// Becomes true when every task of the proxy has ended.
    done: watch::Receiver<bool>,
}

impl Proxy {
    /// Starts a proxy to `target`, listening on a port of 127.0.0.1 the OS picks, passing
    /// everything. `seed` fixes every random decision (jitter, frame faults) of every connection,
    /// given the order in which they are accepted and the bytes they carry.
    ///
    /// # Errors
    /// If the port cannot be bound or listened on.
    ///
    /// # Panics
    /// If called outside a tokio runtime.
    pub async fn start(
        name: impl Into<String>,
        target: SocketAddr,
        framing: Framing,
        seed: u64,
    ) -> io::Result<Proxy> {
        let holder = TcpSocket::new_v4()?;
        holder.set_reuseport(true)?;
        holder.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let addr = holder.local_addr()?;
        let listener = listen_on(addr)?;
        let (control, control_rx) = watch::channel(Control {
            policy: LinkPolicy::pass(),
            closed: false,
        });
        let shared = Arc::new(Shared {
            name: name.into(),
            target,
            framing,
            addr,
            runtime: Handle::current(),
            control,
            epoch: AtomicU64::new(0),
            wakes: Mutex::new(Vec::new()),
            port: Mutex::new(Port {
                holder: Some(holder),
                listener: Some(listener),
            }),
            counters: Counters::default(),
        });
        let (done_tx, done) = watch::channel(false);
        tokio::spawn(accept_loop(shared.clone(), control_rx, seed, done_tx));
        tracing::debug!(proxy = %shared.name, %addr, %target, "proxy started");
        Ok(Proxy { shared, done })
    }

    /// The address clients dial: 127.0.0.1 and the proxy's port, for its whole life.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Where the proxy forwards to.
    #[must_use]
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// The name given at start (for logs and reports).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// What the link carries.
    #[must_use]
    pub fn framing(&self) -> Framing {
        self.shared.framing
    }

    /// Sets the policy, at once. When this returns, a refusing port refuses new connects and a
    /// healed one accepts them; open connections act on it at their task's next step (well under
    /// a millisecond on an idle machine). Ignored once the proxy is closed.
    ///
    /// # Panics
    /// If the policy is not valid ([`LinkPolicy::assert_valid`]).
    pub fn set_policy(&self, policy: LinkPolicy) {
        policy.assert_valid();
        let shared = &self.shared;
        let mut port = shared.port();
        if shared.control.borrow().closed {
            return;
        }
        tracing::debug!(proxy = %shared.name, ?policy, "policy");
        if policy.cut == Cut::Refuse {
            // Close the listener first, so no connection slips in under the old policy.
            port.listener = None;
            shared.control.send_modify(|c| c.policy = policy);
            shared.wake_connections();
        } else {
            // Publish first, so a connection accepted on the new listener sees the new policy.
            shared.control.send_modify(|c| c.policy = policy);
            shared.wake_connections();
            shared.ensure_listener(&mut port);
        }
    }

    /// The policy in force.
    #[must_use]
    pub fn policy(&self) -> LinkPolicy {
        self.shared.control.borrow().policy.clone()
    }

    /// The counters so far.
    #[must_use]
    pub fn stats(&self) -> ProxyStats {
        self.shared.counters.snapshot()
    }

    /// Stops listening, frees the port, and resets every connection. The tasks end on their own
    /// at their next step (within [`CLOSE_WAIT_MAX`], after which they are aborted);
    /// [`Proxy::wait_closed`] waits for that. Idempotent; also done on drop.
    pub fn close(&self) {
        let mut port = self.shared.port();
        port.listener = None;
        port.holder = None;
        self.shared.control.send_modify(|c| c.closed = true);
        self.shared.wake_connections();
    }

    /// Closes the proxy and waits until every one of its tasks has ended.
    pub async fn wait_closed(&self) {
        self.close();
        let mut done = self.done.clone();
        // An error means the accept loop is gone, which is what we wait for.
        let _ = done.wait_for(|done| *done).await;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("name", &self.shared.name)
            .field("addr", &self.shared.addr)
            .field("target", &self.shared.target)
            .field("framing", &self.shared.framing)
            .field("policy", &self.shared.control.borrow().policy)
            .finish()
    }
}

/// A listener on `addr`, sharing the port with the holder.
fn listen_on(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG_MAX)
}

/// Accepts connections and runs one task per connection, until the proxy closes; then waits
/// (bounded) for the connection tasks to reset their sockets.
async fn accept_loop(
    shared: Arc<Shared>,
    mut control: watch::Receiver<Control>,
    seed: u64,
    done: watch::Sender<bool>,
) {
    let mut connections = JoinSet::new();
    // Each connection's seed is the next draw, so the seeds follow the accept order.
    let mut seeds = SplitMix64::new(seed);
    loop {
        if control.borrow_and_update().closed {
            break;
        }
        let relisten = shared.wants_listener();
        tokio::select! {
            changed = control.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = tokio::time::sleep(RELISTEN_RETRY), if relisten => {
                shared.ensure_listener(&mut shared.port());
            }
            accepted = poll_fn(|cx| shared.poll_accept(cx)) => match accepted {
                Ok((down, _)) => {
                    shared.counters.connections_accepted.fetch_add(1, Ordering::Relaxed);
                    if connections.len() >= CONNECTIONS_MAX {
                        tracing::warn!(proxy = %shared.name, "too many connections; resetting a new one");
                        reset(&down);
                        shared.counters.connections_refused.fetch_add(1, Ordering::Relaxed);
                    } else {
                        connections.spawn(serve(shared.clone(), down, seeds.next_u64()));
                    }
                }
                Err(error) => {
                    tracing::warn!(proxy = %shared.name, %error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
    let drained = tokio::time::timeout(CLOSE_WAIT_MAX, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(proxy = %shared.name, "connections did not end in time; aborting them");
    }
    connections.shutdown().await;
    done.send_replace(true);
}

/// Decrements the open-connections gauge when a connection's task ends, aborted or not.
struct OpenGuard<'a>(&'a Counters);

impl<'a> OpenGuard<'a> {
    fn new(counters: &'a Counters) -> OpenGuard<'a> {
        counters.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(counters)
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a connection's task leaves its waker, for the proxy to wake it when the policy changes
/// or the proxy closes. Owned by the task; the proxy keeps a weak reference.
#[derive(Default)]
struct WakeSlot(Mutex<Option<Waker>>);

impl WakeSlot {
    fn wake(&self) {
        // `wake_by_ref`, not `take`: the task stores its waker only when it changes.
        if let Some(waker) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            waker.wake_by_ref();
        }
    }
}

/// Serves one accepted connection to its end.
async fn serve(shared: Arc<Shared>, down: TcpStream, seed: u64) {
    let _open = OpenGuard::new(&shared.counters);
    let _ = down.set_nodelay(true);
    let wake = Arc::new(WakeSlot::default());
    shared.register(&wake);
    // The epoch first: a change after this read is seen as a change.
    let epoch = shared.epoch.load(Ordering::SeqCst);
    let (policy, closed) = {
        let c = shared.control.borrow();
        (c.policy.clone(), c.closed)
    };
    let refuse = |down: &TcpStream| {
        reset(down);
        shared
            .counters
            .connections_refused
            .fetch_add(1, Ordering::Relaxed);
    };
    if closed || policy.cut == Cut::Refuse {
        refuse(&down);
        return;
    }
    let up = if policy.cut == Cut::Drop {
        None
    } else {
        match dial(shared.target).await {
            Ok(up) => Some(up),
            Err(error) => {
                tracing::debug!(proxy = %shared.name, %error, "upstream unreachable; resetting");
                refuse(&down);
                return;
            }
        }
    };
    let mut seeds = SplitMix64::new(seed);
    let framed = shared.framing == Framing::PeerFrames;
    let mut conn = Conn {
        fwd: Link::new(framed, seeds.next_u64()),
        rev: Link::new(false, seeds.next_u64()),
        shared: shared.clone(),
        epoch,
        wake,
        waker: None,
        policy,
        down,
        up,
        fwd_buf: BytesMut::with_capacity(READ_CHUNK_BYTES_MAX),
        rev_buf: BytesMut::with_capacity(READ_CHUNK_BYTES_MAX),
        sleep: None,
        fwd_shut: false,
        rev_shut: false,
        broken: false,
    };
    let outcome = conn.run().await;
    conn.fold_counts();
    match outcome {
        Outcome::Done => {}
        Outcome::Reset => {
            reset(&conn.down);
            if let Some(up) = &conn.up {
                reset(up);
            }
            shared
                .counters
                .connections_reset
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn dial(target: SocketAddr) -> io::Result<TcpStream> {
    let up = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| io::Error::new(ErrorKind::TimedOut, "dialling the upstream timed out"))??;
    up.set_nodelay(true)?;
    Ok(up)
}

/// Makes the socket's close send a reset (`SO_LINGER` 0), discarding unsent data.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Both directions ended cleanly; the sockets close normally.
    Done,
    /// Both sockets are to be reset.
    Reset,
}

/// Which way bytes flow.
#[derive(Clone, Copy, Debug)]
enum Dir {
    /// From the dialler (downstream) to the target (upstream).
    Fwd,
    /// From the target back to the dialler.
    Rev,
}

/// What one read from a source gave.
enum Read {
    Data(Bytes),
    Eof,
    /// Nothing to read after all (a spurious wake-up).
    Nothing,
    Failed(io::Error),
}

/// What is ready after a wait; several things at once are taken in one round, so that neither
/// direction can starve the other.
#[derive(Default)]
struct Ready {
    /// The policy changed or the proxy is closing.
    control: bool,
    read_fwd: bool,
    read_rev: bool,
    /// A socket may take bytes, or something queued became due: the round's writes see to it.
    write_or_time: bool,
    /// A readiness error from either socket.
    error: Option<io::Error>,
}

impl Ready {
    fn any(&self) -> bool {
        self.control || self.read_fwd || self.read_rev || self.write_or_time || self.error.is_some()
    }

    fn note(&mut self, poll: Poll<io::Result<()>>, flag: impl FnOnce(&mut Ready)) {
        match poll {
            Poll::Ready(Ok(())) => flag(self),
            Poll::Ready(Err(error)) => self.error = Some(error),
            Poll::Pending => {}
        }
    }
}

/// One proxied connection: the downstream socket (accepted), the upstream one (dialled), and a
/// [`Link`] each way.
struct Conn {
    shared: Arc<Shared>,
    /// The proxy's control epoch this connection has taken in.
    epoch: u64,
    /// Where the proxy finds this task's waker; `waker` is what was last left there.
    wake: Arc<WakeSlot>,
    waker: Option<Waker>,
    /// The policy this connection last took in.
    policy: LinkPolicy,
    down: TcpStream,
    /// Invariant: `Some` unless the connection was accepted during a drop that has not healed.
    up: Option<TcpStream>,
    fwd: Link,
    rev: Link,
    /// Reused read buffers, one each way; at most `READ_CHUNK_BYTES_MAX` spare before a read.
    fwd_buf: BytesMut,
    rev_buf: BytesMut,
    /// The timer for delayed bytes and held frames, made the first time one is needed.
    sleep: Option<Pin<Box<Sleep>>>,
    /// The end of the stream has been passed on to the upstream (resp. downstream).
    fwd_shut: bool,
    rev_shut: bool,
    /// A socket failed during a drop; nothing can cross until the heal, which resets.
    /// Invariant: only set while the policy drops.
    broken: bool,
}

impl Conn {
    async fn run(&mut self) -> Outcome {
        loop {
            if self.control_changed() {
                if let Some(outcome) = self.on_control().await {
                    return outcome;
                }
            }
            let now = Instant::now();
            self.fwd.on_tick(now);
            self.rev.on_tick(now);
            if !self.broken {
                if let Err(error) = self.write_due(now) {
                    if let Some(outcome) = self.on_failure(&error) {
                        return outcome;
                    }
                }
            }
            if let Err(error) = self.pass_ends().await {
                if let Some(outcome) = self.on_failure(&error) {
                    return outcome;
                }
            }
            self.fold_counts();
            if self.fwd_shut && self.rev_shut {
                return Outcome::Done;
            }
            let ready = self.wait(now).await;
            if ready.control {
                // Taken in at the top of the next round, before any byte is read.
                continue;
            }
            if let Some(error) = ready.error {
                if let Some(outcome) = self.on_failure(&error) {
                    return outcome;
                }
                continue;
            }
            for (dir, readable) in [(Dir::Fwd, ready.read_fwd), (Dir::Rev, ready.read_rev)] {
                if !readable {
                    continue;
                }
                if let Some(outcome) = self.read_into_link(dir).await {
                    return outcome;
                }
                if self.broken {
                    break;
                }
            }
        }
    }

    /// True if the proxy's policy or state changed since this connection last took it in.
    fn control_changed(&self) -> bool {
        self.shared.epoch.load(Ordering::SeqCst) != self.epoch
    }

    /// Waits until something is worth doing: a policy change, a readable source (when the link
    /// wants more), a writable destination (when bytes are due), or the next release time.
    async fn wait(&mut self, now: Instant) -> Ready {
        let active = !self.broken;
        let read_fwd = active && self.fwd.wants_read(&self.policy);
        let read_rev = active && self.up.is_some() && self.rev.wants_read(&self.policy);
        let write_fwd = active && self.up.is_some() && self.fwd.is_due(now);
        let write_rev = active && self.rev.is_due(now);
        let wakeup = if active {
            earliest(self.fwd.next_wakeup(now), self.rev.next_wakeup(now))
        } else {
            None
        };
        if let Some(at) = wakeup {
            let at = tokio::time::Instant::from_std(at);
            match &mut self.sleep {
                Some(sleep) if sleep.deadline() == at => {}
                Some(sleep) => sleep.as_mut().reset(at),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
            }
        }
        poll_fn(|cx| {
            let mut ready = Ready {
                control: self.poll_control(cx),
                ..Ready::default()
            };
            if read_fwd {
                ready.note(self.down.poll_read_ready(cx), |r| r.read_fwd = true);
            }
            if let Some(up) = &self.up {
                if read_rev {
                    ready.note(up.poll_read_ready(cx), |r| r.read_rev = true);
                }
                if write_fwd {
                    ready.note(up.poll_write_ready(cx), |r| r.write_or_time = true);
                }
            }
            if write_rev {
                ready.note(self.down.poll_write_ready(cx), |r| r.write_or_time = true);
            }
            if let (Some(sleep), Some(_)) = (&mut self.sleep, wakeup) {
                if sleep.as_mut().poll(cx).is_ready() {
                    ready.write_or_time = true;
                }
            }
            if ready.any() {
                Poll::Ready(ready)
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Leaves this task's waker where the proxy wakes it from (only when it changed, so the
    /// usual poll takes no lock), then says whether the control changed.
    fn poll_control(&mut self, cx: &Context<'_>) -> bool {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            let waker = cx.waker().clone();
            *self.wake.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(waker.clone());
            self.waker = Some(waker);
        }
        // After storing the waker: a change made before is seen here, one made after wakes us.
        self.control_changed()
    }

    /// Reads one chunk from `dir`'s source and hands it to its link.
    async fn read_into_link(&mut self, dir: Dir) -> Option<Outcome> {
        match self.read(dir) {
            Read::Data(data) => {
                // A policy set before these bytes were sent must apply to them, even if the
                // wake-up that read them came first: take it in before them.
                if self.control_changed() {
                    if let Some(outcome) = self.on_control().await {
                        return Some(outcome);
                    }
                }
                self.feed(dir, data)
            }
            Read::Eof => {
                self.link(dir).on_eof();
                None
            }
            Read::Nothing => None,
            Read::Failed(error) => self.on_failure(&error),
        }
    }

    /// Reads one chunk from `dir`'s source.
    fn read(&mut self, dir: Dir) -> Read {
        let (source, buf) = match (dir, &self.up) {
            (Dir::Fwd, _) => (&self.down, &mut self.fwd_buf),
            (Dir::Rev, Some(up)) => (up, &mut self.rev_buf),
            (Dir::Rev, None) => return Read::Nothing,
        };
        // Reclaims the buffer's own allocation once the last chunk's bytes are written.
        buf.reserve(READ_CHUNK_BYTES_MAX);
        // A read that drains the socket drops its readiness (see `read_draining`).
        match read_draining(source, buf) {
            Ok(0) => Read::Eof,
            Ok(_) => Read::Data(buf.split().freeze()),
            Err(error) if error.kind() == ErrorKind::WouldBlock => Read::Nothing,
            Err(error) => Read::Failed(error),
        }
    }

    /// Hands a chunk read from `dir`'s source to its link, under the policy in force.
    fn feed(&mut self, dir: Dir, data: Bytes) -> Option<Outcome> {
        let now = Instant::now();
        let result = match dir {
            Dir::Fwd => self.fwd.on_data(data, now, &self.policy),
            Dir::Rev => self.rev.on_data(data, now, &self.policy),
        };
        match result {
            Ok(()) => None,
            Err(undecodable) => {
                tracing::warn!(
                    proxy = %self.shared.name,
                    frame_bytes = undecodable.frame_bytes,
                    "stream is not the peer protocol; resetting"
                );
                Some(Outcome::Reset)
            }
        }
    }

    fn link(&mut self, dir: Dir) -> &mut Link {
        match dir {
            Dir::Fwd => &mut self.fwd,
            Dir::Rev => &mut self.rev,
        }
    }

    /// Writes whatever is due, each way, until done or a socket would block.
    fn write_due(&mut self, now: Instant) -> io::Result<()> {
        let Some(up) = &self.up else {
            return Ok(());
        };
        let counters = &self.shared.counters;
        write_link(&mut self.fwd, up, now, counters)?;
        write_link(&mut self.rev, &self.down, now, counters)
    }

    /// Passes each direction's end of stream on once all of it is written (not during a drop:
    /// the end of a stream is news that must not cross a blackhole either).
    async fn pass_ends(&mut self) -> io::Result<()> {
        if self.broken || self.policy.cut != Cut::None {
            return Ok(());
        }
        if let Some(up) = &mut self.up {
            if !self.fwd_shut && self.fwd.is_finished() {
                up.shutdown().await?;
                self.fwd_shut = true;
            }
            if !self.rev_shut && self.rev.is_finished() {
                self.down.shutdown().await?;
                self.rev_shut = true;
            }
        }
        Ok(())
    }

    /// A socket failed: reset now, or, during a drop, at the heal (the failure is news that
    /// must not cross the blackhole).
    fn on_failure(&mut self, error: &io::Error) -> Option<Outcome> {
        tracing::debug!(proxy = %self.shared.name, %error, "connection failed");
        if self.policy.cut == Cut::Drop {
            self.broken = true;
            None
        } else {
            Some(Outcome::Reset)
        }
    }

    /// Takes in the proxy's policy and state.
    async fn on_control(&mut self) -> Option<Outcome> {
        self.epoch = self.shared.epoch.load(Ordering::SeqCst);
        let (policy, closed) = {
            let c = self.shared.control.borrow();
            (c.policy.clone(), c.closed)
        };
        if closed {
            return Some(Outcome::Reset);
        }
        let healed = self.policy.cut == Cut::Drop && policy.cut != Cut::Drop;
        self.policy = policy;
        if self.policy.cut == Cut::Refuse {
            return Some(Outcome::Reset);
        }
        if healed {
            if self.broken || self.fwd.has_lost() || self.rev.has_lost() {
                return Some(Outcome::Reset);
            }
            if self.up.is_none() {
                match dial(self.shared.target).await {
                    Ok(up) => self.up = Some(up),
                    Err(error) => {
                        tracing::debug!(proxy = %self.shared.name, %error, "upstream unreachable at the heal");
                        return Some(Outcome::Reset);
                    }
                }
            }
        }
        None
    }

    fn fold_counts(&mut self) {
        self.shared.counters.add(self.fwd.take_counts());
        self.shared.counters.add(self.rev.take_counts());
    }
}

/// Writes `link`'s due bytes to `dest` until none is due or the socket would block.
fn write_link(
    link: &mut Link,
    dest: &TcpStream,
    now: Instant,
    counters: &Counters,
) -> io::Result<()> {
    while link.is_due(now) {
        let written = {
            let mut slices = [IoSlice::new(&[]); WRITE_SLICES_MAX];
            let filled = link.fill_slices(now, &mut slices);
            let result = match filled {
                0 => return Ok(()),
                1 => dest.try_write(&slices[0]),
                _ => dest.try_write_vectored(&slices[..filled]),
            };
            match result {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(written) => written,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(error) => return Err(error),
            }
        };
        link.consume(written);
        counters
            .bytes_forwarded
            .fetch_add(written as u64, Ordering::Relaxed);
    }
    Ok(())
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

//! One direction of one proxied connection as pure data: bytes come in, the link's policy decides
//! what goes out, when, and in which order.
//!
//! No sockets, no clock (the caller passes `now`), no thread RNG: every per-frame decision comes
//! from a seeded [`SplitMix64`], so the same seed, policy and frame sequence make the same
//! decisions. The proxy (`proxy.rs`) reads into a buffer, hands the bytes to [`Link::on_data`],
//! and writes out what [`Link::fill_slices`] says is due.
//!
//! A byte link treats each chunk read as a unit. A framed link (the peer protocol: frames of
//! `u32 big-endian length | payload`) decides each frame's fate at its first byte and streams the
//! frame through under that fate, so a frame is never split, corrupted or buffered whole unless
//! it is to be duplicated or held back (and those are bounded by [`FAULT_FRAME_BYTES_MAX`]).

use super::policy::{Cut, LinkPolicy};
use bytes::{Buf, Bytes};
use kvs::raft::rand::SplitMix64;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::{Duration, Instant};

/// The largest frame payload a framed link accepts, kvs's own limit; a larger length prefix
/// means the stream is not the peer protocol, and the proxy resets the connection.
pub const FRAME_BYTES_MAX: usize = kvs::node::wire::FRAME_BYTES_MAX;

/// Bytes a link may hold for later (queued or held back) before it stops reading its source.
/// It may go over by one read chunk and one duplicated frame at most. With a delay this bounds
/// the link's bandwidth to `QUEUE_BYTES_MAX / delay`.
pub const QUEUE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// The largest frame (prefix included) that may be duplicated or held back; a larger one picked
/// for either is passed once, in order (it may still be lost).
pub const FAULT_FRAME_BYTES_MAX: usize = 1024 * 1024;

/// Frames held back at once; a frame picked for reordering when this many wait passes in order.
pub const HELD_FRAMES_MAX: usize = 16;

/// Bytes of frames held back at once; same answer as [`HELD_FRAMES_MAX`] when reached.
pub const HELD_BYTES_MAX: usize = 4 * 1024 * 1024;

/// How long frames held back wait for a later frame to overtake them before they go anyway,
/// so that nothing is held forever on a quiet link.
pub const REORDER_HOLD_MAX: Duration = Duration::from_millis(5);

/// Queued items handed to one vectored write.
pub const WRITE_SLICES_MAX: usize = 64;

/// Length of a frame's prefix.
const PREFIX_BYTES: usize = 4;

/// The stream on a framed link is not the peer protocol: its connection must be reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Undecodable {
    /// The length prefix that exceeded [`FRAME_BYTES_MAX`].
    pub frame_bytes: usize,
}

/// What a link did since its counts were last taken; the proxy adds them to its totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounts {
    /// Bytes read and thrown away (a drop, or a lost frame).
    pub bytes_dropped: u64,
    /// Frames queued to be written, a duplicate and a frame sent after being held counted each.
    pub frames_forwarded: u64,
    /// Frames lost (a drop or the loss rate).
    pub frames_dropped: u64,
    /// Extra copies of frames queued.
    pub frames_duplicated: u64,
    /// Frames held back for a later frame to overtake.
    pub frames_reordered: u64,
}

/// Bytes due to be written at `release_at` or later.
#[derive(Debug)]
struct Outgoing {
    release_at: Instant,
    data: Bytes,
}

/// Where the reader of a framed stream is.
#[derive(Clone, Copy, Debug)]
enum Cursor {
    /// Reading a length prefix, of which `have` bytes (copied into `prefix`) have arrived.
    /// Invariant: `have < PREFIX_BYTES`.
    Prefix {
        have: usize,
        prefix: [u8; PREFIX_BYTES],
    },
    /// Inside a payload, `remaining > 0` bytes of it still to come.
    Payload { remaining: usize },
}

/// What becomes of one frame, decided at its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Queued as it arrives; `twice` queues a copy right after it.
    Send { twice: bool },
    /// Kept aside until a later frame has been queued (or [`REORDER_HOLD_MAX`] passed).
    Hold { twice: bool },
    /// Thrown away as it arrives.
    Lose,
}

/// The frame being read.
#[derive(Debug)]
struct Current {
    fate: Fate,
    /// The frame's share of the jitter, drawn once so all its bytes are held alike.
    jitter: Duration,
    /// Copies of the frame's bytes so far, kept to be sent again or later.
    /// Invariant: empty unless the fate is `Hold` or `Send { twice: true }`.
    kept: Vec<Bytes>,
    /// Invariant: `kept_bytes` is the sum of the lengths in `kept`.
    kept_bytes: usize,
}

/// A whole frame held back for a later one to overtake.
#[derive(Debug)]
struct Held {
    pieces: Vec<Bytes>,
    bytes: usize,
    twice: bool,
    release_at: Instant,
}

/// A stretch `start..end` of the chunk being processed, queued as one item when it ends.
#[derive(Clone, Copy, Debug)]
struct Run {
    start: usize,
    end: usize,
    release_at: Instant,
}

/// One direction of one proxied connection.
#[derive(Debug)]
pub struct Link {
    /// True on the framed direction of a `PeerFrames` link.
    framed: bool,
    /// Draws jitter and frame fates; one generator per direction, so the two directions'
    /// timing never changes each other's draws.
    rng: SplitMix64,
    /// Bytes to write, in order. Invariant: release times never decrease from front to back, so
    /// a later chunk or frame never overtakes an earlier one unless it was held back on purpose.
    queue: VecDeque<Outgoing>,
    /// Invariant: the sum of the lengths in `queue`.
    queued_bytes: usize,
    /// Release time of the last item queued (the order rule above).
    last_release: Option<Instant>,
    /// Framed links only: where the frame reader is.
    cursor: Cursor,
    /// Framed links only. Invariant: `Some` from a frame's first byte to its last.
    current: Option<Current>,
    /// Frames begun so far; the first one (index 0) is the `Hello`.
    frames_begun: u64,
    /// Frames held back, in arrival order. Invariant: at most `HELD_FRAMES_MAX` frames and
    /// `HELD_BYTES_MAX` bytes (`held_bytes`).
    held: Vec<Held>,
    held_bytes: usize,
    /// When the held frames go even if nothing overtook them. Invariant: `Some` iff `held` is
    /// not empty.
    held_deadline: Option<Instant>,
    /// The source has ended.
    eof: bool,
    /// Data was lost in a way the connection cannot survive: bytes on a byte stream, or the
    /// `Hello` of a framed one. The proxy resets the connection at the heal.
    lost: bool,
    counts: LinkCounts,
}

impl Link {
    /// A link with nothing read yet; `framed` for the framed direction of a `PeerFrames` link.
    #[must_use]
    pub fn new(framed: bool, seed: u64) -> Link {
        Link {
            framed,
            rng: SplitMix64::new(seed),
            queue: VecDeque::new(),
            queued_bytes: 0,
            last_release: None,
            cursor: Cursor::Prefix {
                have: 0,
                prefix: [0; PREFIX_BYTES],
            },
            current: None,
            frames_begun: 0,
            held: Vec::new(),
            held_bytes: 0,
            held_deadline: None,
            eof: false,
            lost: false,
            counts: LinkCounts::default(),
        }
    }

    /// Whether the proxy should read more from the source now.
    ///
    /// Without a delay the link buffers nothing of its own: it reads again only once the last
    /// chunk is written (the sockets' buffers do the pipelining, as in a plain copy loop). With a
    /// delay it reads ahead up to [`QUEUE_BYTES_MAX`]. During a drop it keeps reading (and
    /// throwing away) so that nothing sent during the drop waits in a socket to be read after it.
    #[must_use]
    pub fn wants_read(&self, policy: &LinkPolicy) -> bool {
        if self.eof || self.queued_bytes + self.held_bytes >= QUEUE_BYTES_MAX {
            return false;
        }
        policy.cut == Cut::Drop || policy.is_delayed() || self.queue.is_empty()
    }

    /// Takes a chunk read from the source at `now`.
    ///
    /// # Errors
    /// On a framed link, a length prefix over [`FRAME_BYTES_MAX`]: the stream is not decodable.
    pub fn on_data(
        &mut self,
        data: Bytes,
        now: Instant,
        policy: &LinkPolicy,
    ) -> Result<(), Undecodable> {
        debug_assert!(!self.eof, "data after the end of the stream");
        if data.is_empty() {
            return Ok(());
        }
        if self.framed {
            return self.on_frames(&data, now, policy);
        }
        if policy.cut != Cut::None {
            self.counts.bytes_dropped += data.len() as u64;
            self.lost = true;
            return Ok(());
        }
        let jitter = self.draw_jitter(policy);
        let release_at = now + policy.delay + jitter;
        let len = data.len();
        self.queue_run(
            &data,
            Run {
                start: 0,
                end: len,
                release_at,
            },
            now,
        );
        Ok(())
    }

    /// The source has ended: frames held back go now (nothing will overtake them); an unfinished
    /// frame is not completed (what of it was queued stays queued, what was kept is dropped).
    pub fn on_eof(&mut self) {
        self.eof = true;
        self.current = None;
        self.release_held();
    }

    /// Lets time pass: frames held past their deadline go now.
    pub fn on_tick(&mut self, now: Instant) {
        if self.held_deadline.is_some_and(|deadline| deadline <= now) {
            self.release_held();
        }
    }

    /// True if bytes are due to be written at `now`.
    #[must_use]
    pub fn is_due(&self, now: Instant) -> bool {
        self.queue.front().is_some_and(|o| o.release_at <= now)
    }

    /// The next time after `now` at which something becomes due (a queued item or the held
    /// frames' deadline), if any.
    #[must_use]
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        let front = self
            .queue
            .front()
            .map(|o| o.release_at)
            .filter(|&t| t > now);
        match (front, self.held_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fills `slices` with the bytes due at `now`, in order, and returns how many it filled.
    pub fn fill_slices<'a>(&'a self, now: Instant, slices: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (slot, item) in slices.iter_mut().zip(self.queue.iter()) {
            if item.release_at > now {
                break;
            }
            *slot = IoSlice::new(&item.data);
            filled += 1;
        }
        filled
    }

    /// Records that the first `written` due bytes were written.
    ///
    /// # Panics
    /// If more was written than was queued (a bug in the caller).
    pub fn consume(&mut self, mut written: usize) {
        assert!(written <= self.queued_bytes, "wrote more than was queued");
        self.queued_bytes -= written;
        while written > 0 {
            let front = self
                .queue
                .front_mut()
                .expect("queued bytes without an item");
            if written < front.data.len() {
                front.data.advance(written);
                return;
            }
            written -= front.data.len();
            self.queue.pop_front();
        }
    }

    /// True once the source has ended and everything read has been written: the proxy may now
    /// pass the end of the stream on.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.eof && self.queue.is_empty() && self.held.is_empty()
    }

    /// True if the source has ended.
    #[must_use]
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// True if the link lost data its connection cannot survive (see the field).
    #[must_use]
    pub fn has_lost(&self) -> bool {
        self.lost
    }

    /// The counts since the last call, zeroing them.
    pub fn take_counts(&mut self) -> LinkCounts {
        std::mem::take(&mut self.counts)
    }

    /// Walks a chunk of a framed stream, frame by frame.
    fn on_frames(
        &mut self,
        data: &Bytes,
        now: Instant,
        policy: &LinkPolicy,
    ) -> Result<(), Undecodable> {
        let mut run: Option<Run> = None;
        let mut pos = 0;
        while pos < data.len() {
            match self.cursor {
                Cursor::Prefix { have, mut prefix } => {
                    if have == 0 {
                        self.begin_frame(policy);
                    }
                    let take = (PREFIX_BYTES - have).min(data.len() - pos);
                    prefix[have..have + take].copy_from_slice(&data[pos..pos + take]);
                    self.feed(data, pos, pos + take, &mut run, now, policy);
                    pos += take;
                    let have = have + take;
                    if have < PREFIX_BYTES {
                        self.cursor = Cursor::Prefix { have, prefix };
                        continue;
                    }
                    let payload_bytes = u32::from_be_bytes(prefix) as usize;
                    if payload_bytes > FRAME_BYTES_MAX {
                        return Err(Undecodable {
                            frame_bytes: payload_bytes,
                        });
                    }
                    self.size_known(PREFIX_BYTES + payload_bytes, data, &mut run, now, policy);
                    if payload_bytes == 0 {
                        self.end_frame(data, &mut run, now, policy);
                        self.cursor = Cursor::Prefix {
                            have: 0,
                            prefix: [0; PREFIX_BYTES],
                        };
                    } else {
                        self.cursor = Cursor::Payload {
                            remaining: payload_bytes,
                        };
                    }
                }
                Cursor::Payload { remaining } => {
                    let take = remaining.min(data.len() - pos);
                    self.feed(data, pos, pos + take, &mut run, now, policy);
                    pos += take;
                    if take == remaining {
                        self.end_frame(data, &mut run, now, policy);
                        self.cursor = Cursor::Prefix {
                            have: 0,
                            prefix: [0; PREFIX_BYTES],
                        };
                    } else {
                        self.cursor = Cursor::Payload {
                            remaining: remaining - take,
                        };
                    }
                }
            }
        }
        if let Some(r) = run.take() {
            self.queue_run(data, r, now);
        }
        Ok(())
    }

    /// Decides the fate of the frame whose first byte has just arrived.
    fn begin_frame(&mut self, policy: &LinkPolicy) {
        debug_assert!(self.current.is_none(), "a frame begun inside another");
        let index = self.frames_begun;
        self.frames_begun += 1;
        let jitter = self.draw_jitter(policy);
        let fate = if policy.cut != Cut::None {
            if index == 0 {
                self.lost = true;
            }
            Fate::Lose
        } else if index == 0 || !policy.has_frame_faults() {
            // The Hello passes untouched, always.
            Fate::Send { twice: false }
        } else {
            // Three draws per frame whatever the rates, so one seed gives one sequence.
            let lose = self.chance(policy.loss);
            let twice = self.chance(policy.duplicate);
            let hold = self.chance(policy.reorder);
            if lose {
                Fate::Lose
            } else if hold && self.held.len() < HELD_FRAMES_MAX {
                Fate::Hold { twice }
            } else {
                Fate::Send { twice }
            }
        };
        if fate == Fate::Lose {
            self.counts.frames_dropped += 1;
        }
        self.current = Some(Current {
            fate,
            jitter,
            kept: Vec::new(),
            kept_bytes: 0,
        });
    }

    /// The frame's size is known (its prefix is complete): one too large to keep is sent once.
    fn size_known(
        &mut self,
        frame_bytes: usize,
        data: &Bytes,
        run: &mut Option<Run>,
        now: Instant,
        policy: &LinkPolicy,
    ) {
        let held_bytes = self.held_bytes;
        let current = self.current.as_mut().expect("a frame is being read");
        let keepable = frame_bytes <= FAULT_FRAME_BYTES_MAX;
        match current.fate {
            Fate::Send { twice: true } if !keepable => {
                current.fate = Fate::Send { twice: false };
                current.kept.clear();
                current.kept_bytes = 0;
            }
            Fate::Hold { twice } if !keepable || held_bytes + frame_bytes > HELD_BYTES_MAX => {
                // The prefix kept so far goes out now, in order, and the rest follows it.
                current.fate = Fate::Send {
                    twice: twice && keepable,
                };
                let kept = std::mem::take(&mut current.kept);
                current.kept_bytes = 0;
                let release_at = now + policy.delay + current.jitter;
                if current.fate == (Fate::Send { twice: true }) {
                    current.kept.clone_from(&kept);
                    current.kept_bytes = kept.iter().map(Bytes::len).sum();
                }
                if let Some(r) = run.take() {
                    self.queue_run(data, r, now);
                }
                for piece in kept {
                    self.queue_bytes(piece, release_at);
                }
            }
            _ => {}
        }
    }

    /// Handles `data[start..end]`, the next bytes of the current frame, by its fate.
    fn feed(
        &mut self,
        data: &Bytes,
        start: usize,
        end: usize,
        run: &mut Option<Run>,
        now: Instant,
        policy: &LinkPolicy,
    ) {
        let bytes = end - start;
        let current = self.current.as_mut().expect("a frame is being read");
        let (fate, jitter) = (current.fate, current.jitter);
        match fate {
            Fate::Lose => {
                self.counts.bytes_dropped += bytes as u64;
                return;
            }
            Fate::Hold { .. } | Fate::Send { twice: true } => {
                current.kept.push(Bytes::copy_from_slice(&data[start..end]));
                current.kept_bytes += bytes;
            }
            Fate::Send { twice: false } => {}
        }
        if let Fate::Send { .. } = fate {
            let release_at = now + policy.delay + jitter;
            match run {
                Some(r) if r.end == start && r.release_at == release_at => r.end = end,
                _ => {
                    if let Some(r) = run.take() {
                        self.queue_run(data, r, now);
                    }
                    *run = Some(Run {
                        start,
                        end,
                        release_at,
                    });
                }
            }
        }
    }

    /// The current frame's last byte has been fed.
    fn end_frame(
        &mut self,
        data: &Bytes,
        run: &mut Option<Run>,
        now: Instant,
        policy: &LinkPolicy,
    ) {
        let current = self.current.take().expect("a frame is being read");
        let release_at = now + policy.delay + current.jitter;
        match current.fate {
            Fate::Lose => {}
            Fate::Send { twice } => {
                self.counts.frames_forwarded += 1;
                if twice || !self.held.is_empty() {
                    if let Some(r) = run.take() {
                        self.queue_run(data, r, now);
                    }
                }
                if twice {
                    self.counts.frames_duplicated += 1;
                    self.counts.frames_forwarded += 1;
                    for piece in current.kept {
                        self.queue_bytes(piece, release_at);
                    }
                }
                // A frame was sent: whatever was held back goes after it, overtaken.
                self.release_held();
            }
            Fate::Hold { twice } => {
                self.counts.frames_reordered += 1;
                self.held_bytes += current.kept_bytes;
                self.held.push(Held {
                    pieces: current.kept,
                    bytes: current.kept_bytes,
                    twice,
                    release_at,
                });
                if self.held_deadline.is_none() {
                    self.held_deadline = Some(now + REORDER_HOLD_MAX);
                }
                debug_assert!(self.held.len() <= HELD_FRAMES_MAX);
                debug_assert!(self.held_bytes <= HELD_BYTES_MAX);
            }
        }
    }

    /// Queues every frame held back, in the order they arrived.
    fn release_held(&mut self) {
        for held in std::mem::take(&mut self.held) {
            debug_assert_eq!(
                held.bytes,
                held.pieces.iter().map(Bytes::len).sum::<usize>()
            );
            let copies = if held.twice { 2 } else { 1 };
            for _ in 0..copies {
                for piece in &held.pieces {
                    self.queue_bytes(piece.clone(), held.release_at);
                }
                self.counts.frames_forwarded += 1;
            }
            if held.twice {
                self.counts.frames_duplicated += 1;
            }
        }
        self.held_bytes = 0;
        self.held_deadline = None;
    }

    /// Queues `data[run]`, sharing the read buffer if it goes out at once and copying it if it
    /// must wait (so a waiting item never pins a whole read buffer).
    fn queue_run(&mut self, data: &Bytes, run: Run, now: Instant) {
        let release_at = self.ordered(run.release_at);
        let bytes = if release_at <= now {
            data.slice(run.start..run.end)
        } else {
            Bytes::copy_from_slice(&data[run.start..run.end])
        };
        self.push(bytes, release_at);
    }

    /// Queues bytes the link already owns.
    fn queue_bytes(&mut self, bytes: Bytes, release_at: Instant) {
        let release_at = self.ordered(release_at);
        self.push(bytes, release_at);
    }

    /// The release time an item asking for `release_at` gets: never before the last one queued.
    fn ordered(&self, release_at: Instant) -> Instant {
        match self.last_release {
            Some(last) if last > release_at => last,
            _ => release_at,
        }
    }

    fn push(&mut self, data: Bytes, release_at: Instant) {
        debug_assert!(self.last_release.is_none_or(|last| last <= release_at));
        if data.is_empty() {
            return;
        }
        self.last_release = Some(release_at);
        self.queued_bytes += data.len();
        self.queue.push_back(Outgoing { release_at, data });
    }

    /// Uniform in `[0, jitter]`, or zero without a draw when there is no jitter.
    fn draw_jitter(&mut self, policy: &LinkPolicy) -> Duration {
        if policy.jitter.is_zero() {
            return Duration::ZERO;
        }
        let nanos = u64::try_from(policy.jitter.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.below(nanos.saturating_add(1)))
    }

    /// True with probability `rate`; always one draw.
    fn chance(&mut self, rate: f64) -> bool {
        // 53 random bits make a uniform float in [0, 1); rate 1.0 is therefore always true.
        let unit = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    /// Everything due at `now`, written out in full.
    fn drain(link: &mut Link, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut slices = [IoSlice::new(&[]); WRITE_SLICES_MAX];
            let filled = link.fill_slices(now, &mut slices);
            if filled == 0 {
                return out;
            }
            let written: usize = slices[..filled].iter().map(|s| s.len()).sum();
            for s in &slices[..filled] {
                out.extend_from_slice(s);
            }
            link.consume(written);
        }
    }

    fn split_frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
            frames.push(bytes[4..4 + len].to_vec());
            bytes = &bytes[4 + len..];
        }
        frames
    }

    fn stream(count: u8) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut bytes = frame(b"hello");
        let mut payloads = vec![b"hello".to_vec()];
        for i in 0..count {
            let payload = vec![i; usize::from(i % 7)];
            bytes.extend(frame(&payload));
            payloads.push(payload);
        }
        (bytes, payloads)
    }

    #[test]
    fn pass_keeps_a_framed_stream_exact_under_any_chunking() {
        let (bytes, _) = stream(40);
        let now = Instant::now();
        for chunk in [1, 2, 3, 5, 64, bytes.len()] {
            let mut link = Link::new(true, 1);
            let mut out = Vec::new();
            for piece in bytes.chunks(chunk) {
                link.on_data(Bytes::copy_from_slice(piece), now, &LinkPolicy::pass())
                    .unwrap();
                out.extend(drain(&mut link, now));
            }
            assert_eq!(out, bytes, "chunk size {chunk}");
            assert_eq!(link.take_counts().frames_forwarded, 41);
        }
    }

    #[test]
    fn an_oversized_prefix_is_undecodable() {
        let mut link = Link::new(true, 1);
        let bad = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0]);
        let error = link
            .on_data(bad, Instant::now(), &LinkPolicy::pass())
            .unwrap_err();
        assert_eq!(error.frame_bytes, u32::MAX as usize);
    }

    #[test]
    fn total_loss_spares_the_hello_only() {
        let (bytes, payloads) = stream(30);
        let now = Instant::now();
        let mut link = Link::new(true, 9);
        link.on_data(Bytes::from(bytes), now, &LinkPolicy::flaky(1.0, 0.0, 0.0))
            .unwrap();
        assert_eq!(
            split_frames(&drain(&mut link, now)),
            vec![payloads[0].clone()]
        );
        let counts = link.take_counts();
        assert_eq!((counts.frames_forwarded, counts.frames_dropped), (1, 30));
        assert!(!link.has_lost());
    }

    #[test]
    fn total_reordering_sends_held_frames_after_the_next_one() {
        let (bytes, payloads) = stream(HELD_FRAMES_MAX as u8 + 1);
        let now = Instant::now();
        let mut link = Link::new(true, 3);
        link.on_data(Bytes::from(bytes), now, &LinkPolicy::flaky(0.0, 0.0, 1.0))
            .unwrap();
        // Hello; then frames 1..=16 are held; frame 17 finds the hold full, goes, and lets
        // the held ones follow in their own order.
        let mut expected = vec![payloads[0].clone(), payloads[HELD_FRAMES_MAX + 1].clone()];
        expected.extend(payloads[1..=HELD_FRAMES_MAX].iter().cloned());
        assert_eq!(split_frames(&drain(&mut link, now)), expected);
        assert_eq!(link.take_counts().frames_reordered, HELD_FRAMES_MAX as u64);
    }

    #[test]
    fn held_frames_go_at_their_deadline_without_a_next_frame() {
        let (bytes, payloads) = stream(1);
        let now = Instant::now();
        let mut link = Link::new(true, 3);
        link.on_data(Bytes::from(bytes), now, &LinkPolicy::flaky(0.0, 0.0, 1.0))
            .unwrap();
        assert_eq!(
            split_frames(&drain(&mut link, now)),
            vec![payloads[0].clone()]
        );
        assert_eq!(link.next_wakeup(now), Some(now + REORDER_HOLD_MAX));
        link.on_tick(now + REORDER_HOLD_MAX);
        let later = drain(&mut link, now + REORDER_HOLD_MAX);
        assert_eq!(split_frames(&later), vec![payloads[1].clone()]);
    }

    #[test]
    fn total_duplication_sends_each_frame_twice_in_a_row_but_the_hello_once() {
        let (bytes, payloads) = stream(5);
        let now = Instant::now();
        let mut link = Link::new(true, 3);
        for piece in bytes.chunks(3) {
            link.on_data(
                Bytes::copy_from_slice(piece),
                now,
                &LinkPolicy::flaky(0.0, 1.0, 0.0),
            )
            .unwrap();
        }
        let mut expected = vec![payloads[0].clone()];
        for p in &payloads[1..] {
            expected.push(p.clone());
            expected.push(p.clone());
        }
        assert_eq!(split_frames(&drain(&mut link, now)), expected);
    }

    #[test]
    fn a_drop_loses_whole_frames_and_a_lost_hello_is_remembered() {
        let (bytes, payloads) = stream(4);
        let bytes = Bytes::from(bytes);
        let now = Instant::now();
        let mut link = Link::new(true, 3);
        // The drop starts in the middle of the Hello: the Hello began under pass, so it ends.
        link.on_data(bytes.slice(..3), now, &LinkPolicy::pass())
            .unwrap();
        link.on_data(bytes.slice(3..12), now, &LinkPolicy::drop())
            .unwrap();
        link.on_data(bytes.slice(12..), now, &LinkPolicy::pass())
            .unwrap();
        let got = split_frames(&drain(&mut link, now));
        assert_eq!(got[0], payloads[0]);
        assert!(got.len() < payloads.len() && got.iter().all(|f| payloads.contains(f)));
        assert!(!link.has_lost());

        let mut link = Link::new(true, 3);
        link.on_data(bytes, now, &LinkPolicy::drop()).unwrap();
        assert!(drain(&mut link, now).is_empty());
        assert!(link.has_lost());
    }

    #[test]
    fn delay_holds_bytes_and_keeps_their_order() {
        let now = Instant::now();
        let mut link = Link::new(false, 5);
        let slow = LinkPolicy::delayed(Duration::from_millis(10), Duration::from_millis(50));
        for i in 0..50u8 {
            link.on_data(
                Bytes::from(vec![i]),
                now + Duration::from_micros(u64::from(i)),
                &slow,
            )
            .unwrap();
        }
        assert!(!link.is_due(now + Duration::from_millis(9)));
        let out = drain(&mut link, now + Duration::from_secs(1));
        assert_eq!(out, (0..50u8).collect::<Vec<_>>());
    }

    #[test]
    fn a_seed_fixes_the_decisions() {
        let (bytes, _) = stream(200);
        let run = |seed| {
            let mut link = Link::new(true, seed);
            let bytes = Bytes::from(bytes.clone());
            link.on_data(bytes, Instant::now(), &LinkPolicy::flaky(0.2, 0.2, 0.2))
                .unwrap();
            link.take_counts()
        };
        assert_eq!(run(11), run(11));
        assert_ne!(run(11), run(12));
    }
}

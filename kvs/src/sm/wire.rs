//! The little binary reader and writer shared by the command and snapshot encodings, and the
//! decode error. Lengths are big-endian `u32`, integers big-endian; a reader never trusts a
//! length beyond the bytes actually left.

use bytes::{BufMut, Bytes, BytesMut};

/// Why bytes could not be decoded as a command or a snapshot. Garbage is always an error, never
/// a panic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end before the value does.
    #[error("truncated: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// Where the missing bytes should start.
        offset: usize,
        /// How many were missing.
        needed: usize,
    },
    /// Bytes are left after the value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// An unknown format version.
    #[error("unsupported version {0}")]
    Version(u8),
    /// An unknown tag (command, set condition or value type).
    #[error("unknown {what} tag {tag}")]
    Tag {
        /// What the tag names.
        what: &'static str,
        /// The tag byte found.
        tag: u8,
    },
    /// The snapshot does not start with its magic bytes.
    #[error("bad magic: not a raftkv snapshot")]
    Magic,
    /// The snapshot's checksum does not match its body.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The CRC32C stored in the snapshot.
        stored: u32,
        /// The CRC32C of the body read.
        computed: u32,
    },
    /// The value is well-formed bytes but breaks a rule (e.g. snapshot keys out of order, an
    /// empty set, a command with no keys).
    #[error("invalid: {0}")]
    Invalid(&'static str),
}

/// Appends `bytes` with a `u32` length prefix.
///
/// # Panics
///
/// If `bytes` is 4 GiB or longer: request limits make that a bug.
pub(crate) fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("a key or value under 4 GiB");
    out.put_u32(len);
    out.put_slice(bytes);
}

/// A cursor over encoded bytes.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// A length-prefixed byte string, copied out.
    pub(crate) fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u32()? as usize;
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }

    /// A count of items each at least `item_bytes_min` long, checked against the bytes left so
    /// that a garbage count cannot make the caller allocate.
    pub(crate) fn count(&mut self, item_bytes_min: usize) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let count = self.u32()? as usize;
        let needed = count.saturating_mul(item_bytes_min);
        if needed > self.remaining() {
            return Err(DecodeError::Truncated {
                offset,
                needed: needed - self.remaining(),
            });
        }
        Ok(count)
    }

    /// Fails unless every byte was read.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}

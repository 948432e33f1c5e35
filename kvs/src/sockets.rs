//! Non-blocking socket helpers shared by the node's client server and peer transport (and the
//! harness's proxies): write what a socket takes now without waiting, and read what it has while
//! dropping its readiness when the read drained it.

use bytes::{Buf, BytesMut};
use std::io::ErrorKind;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Writes as much of `backlog` as `stream` takes at once, without waiting, and drops what was
/// written. A full socket is not an error (the rest stays in `backlog`); an error means the
/// connection is broken.
///
/// # Errors
/// The connection is broken.
pub fn write_without_waiting(stream: &TcpStream, backlog: &mut BytesMut) -> std::io::Result<()> {
    match stream.try_write(backlog) {
        Ok(n) => {
            backlog.advance(n);
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads what `stream` has into `buf`'s spare room (0: the peer closed its side). A read that
/// leaves room in the buffer took everything the socket had, so the socket's read readiness is
/// dropped with it: the next wait for readability sleeps until new bytes arrive, instead of
/// waking for one more read that would block (a system call saved per request).
///
/// The read runs inside `try_io`, which notes the readiness *before* the read and drops only
/// that: bytes that arrive after the read raise a new readiness, which is kept. Dropping the
/// readiness after the read instead would lose that wake-up whenever another thread turns the
/// I/O driver in between (a multi-threaded runtime), leaving a request unanswered until more
/// bytes came.
///
/// # Errors
/// `WouldBlock` when there was nothing to read after all; any other error means the connection
/// is broken.
pub fn read_draining(stream: &TcpStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    let mut read = None;
    let result = stream.try_io(Interest::READABLE, || {
        let room = buf.capacity() - buf.len();
        let n = stream.try_read_buf(buf)?;
        read = Some(n);
        if n > 0 && n < room {
            // Drained: "would block" makes `try_io` drop the readiness it saw before the read.
            return Err(ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match (result, read) {
        (Ok(n), _) => Ok(n),
        (Err(e), Some(n)) if e.kind() == ErrorKind::WouldBlock => Ok(n),
        (Err(e), _) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_drained_socket_still_wakes_for_bytes_that_come_later() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::with_capacity(4096);
        for round in 0..200u32 {
            client.write_all(&round.to_be_bytes()).await.unwrap();
            let mut got = 0;
            while got < 4 {
                tokio::time::timeout(std::time::Duration::from_secs(5), server.readable())
                    .await
                    .expect("woken for the bytes written")
                    .unwrap();
                match read_draining(&server, &mut buf) {
                    Ok(n) => got += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(&buf.split()[..], &round.to_be_bytes()[..]);
        }
    }
}

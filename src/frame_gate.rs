//! Refusing an unauthenticated client's oversize WebSocket frame from its header, before its
//! payload is read (PROTO-7).
//!
//! tungstenite's size limits are fixed when a stream is built: tokio-tungstenite 0.28 (and 0.29)
//! gives no way to change the `WebSocketConfig` of a live `WebSocketStream`. So the gateway builds
//! every stream with the limit of an authenticated client and puts a [`GatedStream`] between it and
//! the socket. Until [`GatedStream::lift`], the gate follows the client's frames header by header:
//! a frame whose header announces more than the pre-authentication limit, or a data frame that
//! takes its message (the sum of its fragments) over it, makes the read fail with
//! [`FrameTooLarge`] as soon as that header is complete, before any of its payload is read.
//!
//! While it is closed, the gate never hands tungstenite bytes past the end of the frame in
//! progress: the limit that applies to a frame is the one in force when tungstenite asks for that
//! frame, not whatever held when its bytes arrived. Lifting it after `connect` succeeded thus
//! applies the larger limit exactly from the frame after `connect` on.
//!
//! [`FrameGate`] is the I/O-free core (proptest drives it); [`GatedStream`] the thin adapter.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest WebSocket frame header: 2 bytes, an 8-byte extended length, a 4-byte mask key.
const MAX_HEADER_BYTES: usize = 14;

/// A frame, or the message it continues, is larger than the gate allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame too large: {announced} bytes announced, at most {limit} allowed before authentication")]
pub(crate) struct FrameTooLarge {
    /// The payload length the frame's header announced, or the message's length with it.
    pub announced: u64,
    /// The limit in force.
    pub limit: usize,
}

/// Where the gate is in the client's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a frame header: its first `have` bytes so far.
    Header { bytes: [u8; MAX_HEADER_BYTES], have: usize },
    /// Inside a frame's payload: `left` bytes to its end.
    Payload { left: u64 },
    /// Lifted: everything passes, nothing is followed.
    Open,
    /// A frame was refused; nothing more passes.
    Refused(FrameTooLarge),
}

const FRESH_HEADER: State = State::Header { bytes: [0; MAX_HEADER_BYTES], have: 0 };

/// The I/O-free core: follows the frames of a client's byte stream and refuses one over the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrameGate {
    limit: usize,
    state: State,
    /// Payload bytes of the data message in progress so far (all its fragments).
    message: u64,
}

impl FrameGate {
    /// A gate at a frame boundary that allows frames and messages of at most `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        FrameGate { limit, state: FRESH_HEADER, message: 0 }
    }

    /// Lets everything through from now on (a refusal stays a refusal).
    pub(crate) fn lift(&mut self) {
        if !matches!(self.state, State::Refused(_)) {
            self.state = State::Open;
        }
    }

    /// Whether [`Self::lift`] has opened the gate.
    pub(crate) fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// The refusal, once a frame was refused.
    pub(crate) fn refused(&self) -> Option<FrameTooLarge> {
        match self.state {
            State::Refused(err) => Some(err),
            _ => None,
        }
    }

    /// How many bytes may be read now without reading past the end of the current header or
    /// payload (`usize::MAX` once open); the refusal once refused.
    pub(crate) fn readable(&self) -> Result<usize, FrameTooLarge> {
        match self.state {
            State::Header { bytes, have } => Ok(header_len(&bytes[..have]) - have),
            State::Payload { left } => Ok(usize::try_from(left).unwrap_or(usize::MAX)),
            State::Open => Ok(usize::MAX),
            State::Refused(err) => Err(err),
        }
    }

    /// Accounts for `bytes` read from the client (any number, across any frames); fails when a
    /// header among them is refused: the bytes after that header are not accounted for.
    pub(crate) fn advance(&mut self, mut bytes: &[u8]) -> Result<(), FrameTooLarge> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Open => return Ok(()),
                State::Refused(err) => return Err(*err),
                State::Payload { left } => {
                    let n = bytes.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.state = FRESH_HEADER;
                    }
                }
                State::Header { bytes: header, have } => {
                    let need = header_len(&header[..*have]);
                    let n = bytes.len().min(need - *have);
                    header[*have..*have + n].copy_from_slice(&bytes[..n]);
                    *have += n;
                    bytes = &bytes[n..];
                    if *have == header_len(&header[..*have]) {
                        let header = *header;
                        self.on_header(&header)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A complete header: refuse it, or move into its payload.
    fn on_header(&mut self, header: &[u8; MAX_HEADER_BYTES]) -> Result<(), FrameTooLarge> {
        let opcode = header[0] & 0x0F;
        let len = match header[1] & 0x7F {
            126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
            127 => u64::from_be_bytes(header[2..10].try_into().expect("8 bytes")),
            short => u64::from(short),
        };
        let (limit, max) = (self.limit as u64, self.limit);
        let refuse = |announced| Err(FrameTooLarge { announced, limit: max });
        let result = match opcode {
            _ if len > limit => refuse(len),
            // A fragment that continues a message (0), or a new text (1) or binary (2) message.
            0..=2 => {
                self.message = if opcode == 0 { self.message.saturating_add(len) } else { len };
                if self.message > limit {
                    refuse(self.message)
                } else {
                    Ok(())
                }
            }
            // Control frames (and reserved opcodes, which tungstenite refuses) are no part of a message.
            _ => Ok(()),
        };
        self.state = match result {
            Err(err) => State::Refused(err),
            Ok(()) if len == 0 => FRESH_HEADER,
            Ok(()) => State::Payload { left: len },
        };
        result
    }
}

/// The length of the header whose first bytes are `start` (2 until its second byte is known).
fn header_len(start: &[u8]) -> usize {
    let Some(&second) = start.get(1) else { return 2 };
    let extended = match second & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    2 + extended + mask
}

/// A client's stream behind a [`FrameGate`]: reads pass the gate, writes go straight through.
#[derive(Debug)]
pub(crate) struct GatedStream<S> {
    inner: S,
    gate: FrameGate,
    /// Bytes of the client already read along with its HTTP upgrade request, served first.
    already_read: Vec<u8>,
    /// How many of `already_read` have been served.
    served: usize,
}

impl<S> GatedStream<S> {
    /// Gates `inner` at `limit` bytes; `already_read` are the client's first bytes, read with its
    /// upgrade request, which pass the gate before anything from `inner`.
    pub(crate) fn new(inner: S, already_read: Vec<u8>, limit: usize) -> Self {
        GatedStream { inner, gate: FrameGate::new(limit), already_read, served: 0 }
    }

    /// Opens the gate: from now on only tungstenite's own limits apply.
    pub(crate) fn lift(&mut self) {
        self.gate.lift();
    }

    /// The refusal, once a frame was refused.
    pub(crate) fn refused(&self) -> Option<FrameTooLarge> {
        self.gate.refused()
    }

    /// The underlying stream (bytes already read and not yet served are dropped).
    pub(crate) fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GatedStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let want = this.gate.readable().map_err(refusal)?.min(buf.remaining());
        if want == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.served < this.already_read.len() {
            let end = this.served + want.min(this.already_read.len() - this.served);
            let chunk = &this.already_read[this.served..end];
            this.gate.advance(chunk).map_err(refusal)?;
            buf.put_slice(chunk);
            this.served = end;
            if this.served == this.already_read.len() {
                this.already_read = Vec::new();
                this.served = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if this.gate.is_open() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(want));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        let n = limited.filled().len();
        this.gate.advance(limited.filled()).map_err(refusal)?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// The I/O error a refusal surfaces as (tungstenite passes it on as `Error::Io`).
fn refusal(err: FrameTooLarge) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GatedStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio::io::AsyncReadExt;

    /// One client frame of the model: opcode, payload length, how the length is written
    /// (0: shortest, 1: 16-bit, 2: 64-bit where it fits) and whether it is masked.
    #[derive(Debug, Clone)]
    struct Frame {
        opcode: u8,
        len: u64,
        form: u8,
        masked: bool,
    }

    fn header(f: &Frame) -> Vec<u8> {
        let mask = if f.masked { 0x80 } else { 0 };
        let mut out = vec![0x80 | f.opcode];
        match (f.form, f.len) {
            (0, len @ 0..=125) => out.push(mask | len as u8),
            (0 | 1, len @ 0..=0xFFFF) => {
                out.push(mask | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            (_, len) => {
                out.push(mask | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        if f.masked {
            out.extend_from_slice(&[1, 2, 3, 4]);
        }
        out
    }

    fn frame() -> impl Strategy<Value = Frame> {
        (prop::sample::select(vec![0u8, 1, 2, 8, 9, 10, 3]), 0u64..200, 0u8..3, any::<bool>())
            .prop_map(|(opcode, len, form, masked)| Frame { opcode, len, form, masked })
    }

    /// The client's bytes, the offsets where a header or a payload ends, and the refusal the
    /// model expects: (offset of the refused header's end, what it announced).
    fn model(frames: &[Frame], limit: u64) -> (Vec<u8>, Vec<usize>, Option<(usize, u64)>) {
        let (mut bytes, mut ends, mut message) = (Vec::new(), Vec::new(), 0u64);
        for f in frames {
            bytes.extend(header(f));
            ends.push(bytes.len());
            let announced = match f.opcode {
                _ if f.len > limit => Some(f.len),
                0..=2 => {
                    message = if f.opcode == 0 { message + f.len } else { f.len };
                    (message > limit).then_some(message)
                }
                _ => None,
            };
            if let Some(announced) = announced {
                return (bytes.clone(), ends, Some((bytes.len(), announced)));
            }
            bytes.extend(std::iter::repeat_n(0xAB, f.len as usize));
            ends.push(bytes.len());
        }
        (bytes, ends, None)
    }

    proptest! {
        /// PROTO-7: whatever the chunking, the gate refuses exactly the first frame that is, or
        /// whose message becomes, larger than the limit, as soon as its header is complete; reads
        /// within `readable()` never cross the end of a header or payload.
        #[test]
        fn proto7_gate_refuses_at_the_header_and_never_reads_past_a_frame(
            frames in prop::collection::vec(frame(), 0..12),
            limit in 0usize..150,
            chunks in prop::collection::vec(1usize..40, 1..50),
        ) {
            let (bytes, ends, expected) = model(&frames, limit as u64);
            // Reading as the adapter does: never more than `readable()`.
            let mut gate = FrameGate::new(limit);
            let (mut at, mut chunk) = (0, chunks.iter().cycle());
            let mut outcome = Ok(());
            while at < bytes.len() && outcome.is_ok() {
                let n = (*chunk.next().unwrap()).min(gate.readable().unwrap()).min(bytes.len() - at);
                prop_assert!(n > 0);
                prop_assert!(!ends.iter().any(|&end| at < end && end < at + n), "a read of {}..{} crosses a frame boundary", at, at + n);
                outcome = gate.advance(&bytes[at..at + n]);
                at += n;
            }
            match expected {
                Some((end, announced)) => {
                    prop_assert_eq!(at, end);
                    prop_assert_eq!(outcome, Err(FrameTooLarge { announced, limit }));
                    prop_assert_eq!(gate.refused(), Some(FrameTooLarge { announced, limit }));
                    prop_assert!(gate.readable().is_err());
                    gate.lift();
                    prop_assert!(gate.refused().is_some(), "a refusal stays a refusal");
                }
                None => {
                    prop_assert_eq!(outcome, Ok(()));
                    prop_assert_eq!(gate.readable(), Ok(2), "back at a frame boundary");
                }
            }
            // Any chunking, ignoring `readable()`, reaches the same verdict.
            let mut free = FrameGate::new(limit);
            let (mut at, mut chunk) = (0, chunks.iter().cycle());
            let mut outcome = Ok(());
            while at < bytes.len() && outcome.is_ok() {
                let n = (*chunk.next().unwrap()).min(bytes.len() - at);
                outcome = free.advance(&bytes[at..at + n]);
                at += n;
            }
            prop_assert_eq!(free.refused(), expected.map(|(_, announced)| FrameTooLarge { announced, limit }));
        }
    }

    /// PROTO-7: once lifted, the gate lets anything through.
    #[test]
    fn proto7_lifted_gate_passes_everything() {
        let mut gate = FrameGate::new(10);
        gate.lift();
        assert_eq!(gate.readable(), Ok(usize::MAX));
        let big = header(&Frame { opcode: 1, len: 1 << 20, form: 0, masked: true });
        assert_eq!(gate.advance(&big), Ok(()));
        assert!(gate.is_open());
    }

    /// PROTO-7: the adapter serves the bytes read with the upgrade first, through the gate, and
    /// fails the read that completes an oversize header without reading its payload.
    #[tokio::test]
    async fn proto7_gated_stream_refuses_an_announced_frame_unread() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let small = Frame { opcode: 1, len: 3, form: 0, masked: true };
        let mut already = header(&small);
        already.extend_from_slice(b"abc");
        already.extend_from_slice(&header(&Frame { opcode: 1, len: 8 << 20, form: 2, masked: true })[..5]);
        let mut gated = GatedStream::new(server, already.clone(), 64 * 1024);
        use tokio::io::AsyncWriteExt;
        client.write_all(&header(&Frame { opcode: 1, len: 8 << 20, form: 2, masked: true })[5..]).await.unwrap();
        client.write_all(&[0u8; 1000]).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let err = loop {
            match gated.read(&mut buf).await {
                Ok(0) => panic!("end of stream before the refusal"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(err) => break err,
            }
        };
        assert_eq!(got, already, "the small frame and the first 5 header bytes, nothing else");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(gated.refused(), Some(FrameTooLarge { announced: 8 << 20, limit: 64 * 1024 }));
        assert!(gated.read(&mut buf).await.is_err(), "a refusal stays a refusal");
        // The payload was never read: it is all still in the pipe.
        let mut inner = gated.into_inner();
        drop(client);
        let mut rest = Vec::new();
        inner.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest.len(), 1000);
    }
}

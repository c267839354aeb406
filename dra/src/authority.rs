//! The `:authority` a kubelet sends over a unix socket, made acceptable to our gRPC server.
//!
//! The kubelet's gRPC client (grpc-go) names a unix-socket peer by its path: its HTTP/2
//! `:authority` is the percent-encoded socket path (`%2Fvar%2Flib%2Fkubelet%2F...sock`; older
//! releases sent the raw `/var/lib/...`). Neither is an authority by RFC 3986, and `h2`, under
//! tonic, refuses the request: `malformed headers: malformed authority`, RST_STREAM
//! PROTOCOL_ERROR. The plugin watcher then never learns our driver (a long-known `h2` limit).
//!
//! [`AuthorityShim`] sits between each accepted connection and the server. Bytes from the server
//! to the client pass untouched. From the client, after the connection preface, every frame but
//! a header block passes as it came; a header block (HEADERS and its CONTINUATION frames) is
//! decoded with the connection's HPACK decoder (its dynamic table kept across the connection, as
//! the client's encoder expects), an `:authority` that [`http::uri::Authority`] refuses becomes
//! [`REPLACEMENT`], and the block is encoded again toward the server with literal fields that
//! are never indexed and never Huffman-coded: the server's decoder table then stays empty, so
//! the shim keeps no encoder state and whatever the client indexes stays consistent on its side.
//! Nothing else in the block changes; the authority is not used by our services.
//!
//! A hostile local client gets no more from the shim than from the server: a header block is
//! buffered up to [`MAX_BLOCK`] bytes and decodes to at most [`MAX_LIST`] bytes, each frame of it
//! fits the server's frame size, no more is read from the client while the server has 64 KiB
//! waiting, and anything the shim cannot follow closes the connection.

use std::borrow::Cow;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use loona_hpack::Decoder;
use loona_hpack::decoder::DecoderError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// What an `:authority` the server would refuse is replaced with.
pub const REPLACEMENT: &[u8] = b"localhost";
/// The server's SETTINGS_MAX_FRAME_SIZE: the default, which tonic and hyper leave as it is. A
/// header frame longer than this is refused (the server would refuse it too), and the frames
/// the shim writes are no longer.
pub const MAX_FRAME: usize = 16_384;
/// The most bytes of one header block (all its fragments) the shim buffers.
pub const MAX_BLOCK: usize = 64 * 1024;
/// The most a header block may decode to, counted as SETTINGS_MAX_HEADER_LIST_SIZE counts
/// (name + value + 32 per field); the server's own limit (16 KiB in hyper) is lower.
pub const MAX_LIST: usize = 64 * 1024;
/// Once this much is waiting for the server, the shim reads no more from the client: header
/// blocks that refer to large table entries decode to far more than they take on the wire.
const OUT_HIGH_WATER: usize = 64 * 1024;
/// The server's SETTINGS_HEADER_TABLE_SIZE (the default, left as it is): the largest dynamic
/// table a client's encoder may use toward it.
const SERVER_TABLE_SIZE: usize = 4096;

const FRAME_HEAD: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// Why the shim closed a connection.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A header frame longer than the server's SETTINGS_MAX_FRAME_SIZE.
    #[error("a header frame of {0} bytes exceeds the frame size {MAX_FRAME}")]
    FrameTooLarge(usize),
    /// A header block longer than [`MAX_BLOCK`].
    #[error("a header block exceeds {MAX_BLOCK} bytes")]
    BlockTooLarge,
    /// A header block that decodes to more than [`MAX_LIST`].
    #[error("a header block decodes to more than {MAX_LIST} bytes")]
    ListTooLarge,
    /// Another frame where the CONTINUATION of an open header block belongs.
    #[error("a frame of type {0:#x} interrupts a header block")]
    Interleaved(u8),
    /// A CONTINUATION frame with no header block open.
    #[error("a CONTINUATION frame outside a header block")]
    StrayContinuation,
    /// Padding or priority fields longer than their HEADERS frame.
    #[error("a HEADERS frame shorter than its padding and priority fields")]
    Malformed,
    /// The header block is not valid HPACK for this connection.
    #[error("HPACK: {0}")]
    Hpack(#[from] DecoderError),
}

/// Where the client's byte stream is.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Within the connection preface, this many bytes into it.
    Preface(usize),
    /// Not HTTP/2 with prior knowledge: all passes through, and the server answers it.
    Opaque,
    /// Reading a frame header.
    Head,
    /// Passing this many more payload bytes of a frame that is not a header frame.
    Pass(usize),
    /// Gathering the payload of a HEADERS or CONTINUATION frame.
    Gather {
        kind: u8,
        flags: u8,
        stream: u32,
        len: usize,
    },
}

/// A header block being gathered.
struct Block {
    stream: u32,
    end_stream: bool,
    fragment: Vec<u8>,
}

/// The client-to-server half of the shim as a push parser: bytes in, bytes for the server out.
pub struct Rewriter {
    phase: Phase,
    head: [u8; FRAME_HEAD],
    head_len: usize,
    frame: Vec<u8>,
    block: Option<Block>,
    decoder: Decoder<'static>,
}

impl Default for Rewriter {
    fn default() -> Self {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(SERVER_TABLE_SIZE);
        Self {
            phase: Phase::Preface(0),
            head: [0; FRAME_HEAD],
            head_len: 0,
            frame: Vec::new(),
            block: None,
            decoder,
        }
    }
}

impl Rewriter {
    /// Takes the next bytes from the client and appends what the server is to read to `out`;
    /// returns how many it took: all, unless `out` grew past a high-water mark first (at
    /// least one byte is taken while `out` is empty). An error means the connection cannot
    /// go on.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, Refused> {
        let whole = input.len();
        let mut input = input;
        while !input.is_empty() && out.len() < OUT_HIGH_WATER {
            match self.phase {
                Phase::Preface(seen) => {
                    let n = (PREFACE.len() - seen).min(input.len());
                    if input[..n] != PREFACE[seen..seen + n] {
                        self.phase = Phase::Opaque;
                        continue;
                    }
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.phase = if seen + n == PREFACE.len() {
                        Phase::Head
                    } else {
                        Phase::Preface(seen + n)
                    };
                }
                Phase::Opaque => {
                    out.extend_from_slice(input);
                    input = &[];
                }
                Phase::Pass(left) => {
                    let n = left.min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.phase = if n == left {
                        Phase::Head
                    } else {
                        Phase::Pass(left - n)
                    };
                }
                Phase::Head => {
                    let n = (FRAME_HEAD - self.head_len).min(input.len());
                    self.head[self.head_len..self.head_len + n].copy_from_slice(&input[..n]);
                    self.head_len += n;
                    input = &input[n..];
                    if self.head_len == FRAME_HEAD {
                        self.head_len = 0;
                        self.phase = self.start_frame(out)?;
                    }
                }
                Phase::Gather {
                    kind,
                    flags,
                    stream,
                    len,
                } => {
                    let n = (len - self.frame.len()).min(input.len());
                    self.frame.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if self.frame.len() == len {
                        self.end_frame(kind, flags, stream, out)?;
                        self.phase = Phase::Head;
                    }
                }
            }
        }
        Ok(whole - input.len())
    }

    /// A frame header was read: pass the frame on, or gather it if it carries a header block.
    fn start_frame(&mut self, out: &mut Vec<u8>) -> Result<Phase, Refused> {
        let h = self.head;
        let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let (kind, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        match (kind, &self.block) {
            (HEADERS, None) | (CONTINUATION, Some(_)) => {
                if len > MAX_FRAME {
                    return Err(Refused::FrameTooLarge(len));
                }
                if let Some(block) = &self.block {
                    if block.stream != stream {
                        return Err(Refused::Interleaved(kind));
                    }
                    if block.fragment.len() + len > MAX_BLOCK {
                        return Err(Refused::BlockTooLarge);
                    }
                }
                self.frame.clear();
                if len == 0 {
                    self.end_frame(kind, flags, stream, out)?;
                    return Ok(Phase::Head);
                }
                Ok(Phase::Gather {
                    kind,
                    flags,
                    stream,
                    len,
                })
            }
            (CONTINUATION, None) => Err(Refused::StrayContinuation),
            (_, Some(_)) => Err(Refused::Interleaved(kind)),
            (_, None) => {
                out.extend_from_slice(&h);
                Ok(if len == 0 {
                    Phase::Head
                } else {
                    Phase::Pass(len)
                })
            }
        }
    }

    /// A header frame was gathered: add its fragment to the block; at END_HEADERS, rewrite it.
    fn end_frame(
        &mut self,
        kind: u8,
        flags: u8,
        stream: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), Refused> {
        let payload = &self.frame[..];
        if kind == HEADERS {
            let mut body = payload;
            let mut padding = 0;
            if flags & PADDED != 0 {
                let (&pad, rest) = body.split_first().ok_or(Refused::Malformed)?;
                padding = usize::from(pad);
                body = rest;
            }
            if flags & PRIORITY != 0 {
                body = body.get(5..).ok_or(Refused::Malformed)?;
            }
            let end = body.len().checked_sub(padding).ok_or(Refused::Malformed)?;
            self.block = Some(Block {
                stream,
                end_stream: flags & END_STREAM != 0,
                fragment: body[..end].to_vec(),
            });
        } else if let Some(block) = &mut self.block {
            block.fragment.extend_from_slice(payload);
        }
        if flags & END_HEADERS != 0
            && let Some(block) = self.block.take()
        {
            self.rewrite(&block, out)?;
        }
        Ok(())
    }

    /// Decodes a whole header block, replaces a refused `:authority` and writes the block
    /// again as one HEADERS frame (and CONTINUATION frames beyond [`MAX_FRAME`]).
    fn rewrite(&mut self, block: &Block, out: &mut Vec<u8>) -> Result<(), Refused> {
        let mut encoded = Vec::with_capacity(block.fragment.len() * 2);
        let mut listed = 0usize;
        self.decoder
            .decode_with_cb(&block.fragment, |name, value| {
                listed += name.len() + value.len() + 32;
                if listed > MAX_LIST {
                    return;
                }
                let value = if name.as_ref() == b":authority" && !acceptable(&value) {
                    tracing::debug!(
                        authority = %String::from_utf8_lossy(&value),
                        "replacing an :authority the gRPC server refuses"
                    );
                    Cow::Borrowed(REPLACEMENT)
                } else {
                    value
                };
                encode_literal(&name, &value, &mut encoded);
            })?;
        if listed > MAX_LIST {
            return Err(Refused::ListTooLarge);
        }
        write_block(block.stream, block.end_stream, &encoded, out);
        Ok(())
    }
}

/// Whether h2 takes `value` as an `:authority`: it parses it with `http`, as here.
pub fn acceptable(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// Writes `block` as one HEADERS frame of `stream`, split into CONTINUATION frames where it is
/// longer than [`MAX_FRAME`]. END_STREAM is kept. PADDED and PRIORITY are not written: padding
/// carries nothing, and the priority fields (deprecated by RFC 9113) are advice that h2 does not
/// act on, so leaving both out changes nothing the server does and keeps the frame simple.
fn write_block(stream: u32, end_stream: bool, block: &[u8], out: &mut Vec<u8>) {
    let mut chunks = block.chunks(MAX_FRAME).peekable();
    let mut kind = HEADERS;
    let mut flags = if end_stream { END_STREAM } else { 0 };
    loop {
        let chunk = chunks.next().unwrap_or_default();
        let last = chunks.peek().is_none();
        if last {
            flags |= END_HEADERS;
        }
        write_frame_head(chunk.len(), kind, flags, stream, out);
        out.extend_from_slice(chunk);
        if last {
            return;
        }
        kind = CONTINUATION;
        flags = 0;
    }
}

fn write_frame_head(len: usize, kind: u8, flags: u8, stream: u32, out: &mut Vec<u8>) {
    // `len` is at most MAX_FRAME, so its three low bytes hold it.
    let len = (len as u32).to_be_bytes();
    out.extend_from_slice(&[len[1], len[2], len[3], kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
}

/// An integer with an N-bit prefix (RFC 7541 §5.1); `high` holds the bits above the prefix.
pub fn encode_integer(value: usize, prefix_bits: u8, high: u8, out: &mut Vec<u8>) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// A string literal without Huffman coding (RFC 7541 §5.2, H = 0).
pub fn encode_string(bytes: &[u8], out: &mut Vec<u8>) {
    encode_integer(bytes.len(), 7, 0, out);
    out.extend_from_slice(bytes);
}

/// A literal header field without indexing, with a literal name (RFC 7541 §6.2.2): the
/// decoder's dynamic table is left alone.
pub fn encode_literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0x00);
    encode_string(name, out);
    encode_string(value, out);
}

/// A connection with the client's header blocks rewritten as the module describes.
pub struct AuthorityShim<T> {
    inner: T,
    rewriter: Rewriter,
    /// Bytes for the server not read yet, from `sent` on.
    out: Vec<u8>,
    sent: usize,
    /// Bytes read from the client; those in `pending` are not fed to the rewriter yet.
    scratch: Box<[u8]>,
    pending: std::ops::Range<usize>,
    /// The client closed, or the shim gave up on the connection.
    done: bool,
}

impl<T> AuthorityShim<T> {
    /// Wraps an accepted connection.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            rewriter: Rewriter::default(),
            out: Vec::new(),
            sent: 0,
            scratch: vec![0; 8192].into_boxed_slice(),
            pending: 0..0,
            done: false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for AuthorityShim<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.sent < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.sent);
                buf.put_slice(&this.out[this.sent..this.sent + n]);
                this.sent += n;
                if this.sent == this.out.len() {
                    this.out.clear();
                    this.sent = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if !this.pending.is_empty() {
                let input = &this.scratch[this.pending.clone()];
                match this.rewriter.feed(input, &mut this.out) {
                    Ok(taken) => this.pending.start += taken,
                    Err(e) => {
                        tracing::warn!(error = %e, "closing a gRPC connection the :authority shim cannot follow");
                        this.done = true;
                        this.pending = 0..0;
                        this.out.clear();
                        this.sent = 0;
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                    }
                }
                continue;
            }
            if this.done {
                return Poll::Ready(Ok(()));
            }
            let mut read = ReadBuf::new(&mut this.scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let got = read.filled().len();
            if got == 0 {
                this.done = true;
            }
            this.pending = 0..got;
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for AuthorityShim<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<T: Connected> Connected for AuthorityShim<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests;

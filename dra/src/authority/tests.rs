use loona_hpack::Decoder;
use loona_hpack::decoder::DecoderError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const DATA: u8 = 0x0;
const SETTINGS: u8 = 0x4;
const BAD: &[u8] = b"%2Fvar%2Flib%2Fkubelet%2Fplugins_registry%2Fgpu.tessera.dev-reg.sock";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let len = (payload.len() as u32).to_be_bytes();
    out.extend_from_slice(&[len[1], len[2], len[3], kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A frame as read back: type, flags, stream, payload.
type Frame = (u8, u8, u32, Vec<u8>);

/// The frames after the preface.
fn frames(mut bytes: &[u8]) -> Vec<Frame> {
    assert_eq!(&bytes[..PREFACE.len()], PREFACE);
    bytes = &bytes[PREFACE.len()..];
    let mut all = Vec::new();
    while !bytes.is_empty() {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
        all.push((bytes[3], bytes[4], stream, bytes[9..9 + len].to_vec()));
        bytes = &bytes[9 + len..];
    }
    all
}

/// Feeds all of `client`, taking what the server would read each time the rewriter stops.
fn feed_all(rewriter: &mut Rewriter, mut client: &[u8], read: &mut Vec<u8>) -> Result<(), Refused> {
    let mut out = Vec::new();
    while !client.is_empty() {
        let taken = rewriter.feed(client, &mut out)?;
        assert!(taken > 0, "progress while the output is drained");
        client = &client[taken..];
        read.append(&mut out);
    }
    Ok(())
}

fn rewrite(client: &[u8]) -> Result<Vec<u8>, Refused> {
    let mut read = Vec::new();
    feed_all(&mut Rewriter::default(), client, &mut read)?;
    Ok(read)
}

fn connection(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(SETTINGS, 0, 0, &[]));
    for part in parts {
        bytes.extend_from_slice(part);
    }
    bytes
}

fn decode(block: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    Decoder::new().decode(block).unwrap()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn integer(value: usize, prefix_bits: u8, high: u8) -> Vec<u8> {
    let mut out = Vec::new();
    encode_integer(value, prefix_bits, high, &mut out);
    out
}

#[test]
fn integers_are_encoded_as_rfc_7541_shows_at_each_prefix_boundary() {
    // RFC 7541 C.1.1 to C.1.3.
    assert_eq!(integer(10, 5, 0), [0x0a]);
    assert_eq!(integer(1337, 5, 0), [0x1f, 0x9a, 0x0a]);
    assert_eq!(integer(42, 8, 0), [0x2a]);
    // 2^N - 2 fits the prefix; 2^N - 1 needs a zero continuation; one more starts it at 1.
    assert_eq!(integer(30, 5, 0), [0x1e]);
    assert_eq!(integer(31, 5, 0), [0x1f, 0x00]);
    assert_eq!(integer(32, 5, 0), [0x1f, 0x01]);
    assert_eq!(integer(126, 7, 0), [0x7e]);
    assert_eq!(integer(127, 7, 0), [0x7f, 0x00]);
    assert_eq!(integer(128, 7, 0), [0x7f, 0x01]);
    // 127 + 127 still fits one continuation octet; 127 + 128 needs two.
    assert_eq!(integer(254, 7, 0), [0x7f, 0x7f]);
    assert_eq!(integer(255, 7, 0), [0x7f, 0x80, 0x01]);
    assert_eq!(integer(254, 8, 0), [0xfe]);
    assert_eq!(integer(255, 8, 0), [0xff, 0x00]);
    // The bits above the prefix are kept.
    assert_eq!(integer(62, 6, 0x40), [0x7e]);
    assert_eq!(integer(63, 6, 0x40), [0x7f, 0x00]);
}

#[test]
fn integers_decode_back_through_the_hpack_decoder() {
    // 5-bit prefix: a dynamic table size update (0b001 above it), then one field.
    for size in [0, 30, 31, 32, 158, 159, 1337, 4096] {
        let mut block = integer(size, 5, 0x20);
        encode_literal(b"a", b"b", &mut block);
        assert_eq!(decode(&block), pairs(&[("a", "b")]), "table size {size}");
    }
    // 7-bit prefix: string lengths.
    for len in [0, 1, 126, 127, 128, 254, 255, 16_383, 16_384, 70_000] {
        let value = vec![b'v'; len];
        let mut block = Vec::new();
        encode_literal(b"x-long", &value, &mut block);
        assert_eq!(
            decode(&block),
            [(b"x-long".to_vec(), value)],
            "length {len}"
        );
    }
}

#[test]
fn encoded_blocks_round_trip_and_leave_the_decoder_table_empty() {
    let headers = pairs(&[
        (":method", "POST"),
        (":path", "/pluginregistration.Registration/GetInfo"),
        ("content-type", "application/grpc"),
        ("empty", ""),
    ]);
    let mut block = Vec::new();
    for (n, v) in &headers {
        encode_literal(n, v, &mut block);
    }
    let mut decoder = Decoder::new();
    assert_eq!(decoder.decode(&block).unwrap(), headers);
    // Index 62 is the first dynamic entry: there is none.
    assert_eq!(
        decoder.decode(&[0x80 | 62]),
        Err(DecoderError::HeaderIndexOutOfBounds)
    );
}

#[test]
fn only_authorities_h2_refuses_are_replaced() {
    assert!(!acceptable(BAD));
    assert!(!acceptable(
        b"/var/lib/kubelet/plugins_registry/gpu.tessera.dev-reg.sock"
    ));
    assert!(acceptable(b"localhost"));
    assert!(acceptable(b"localhost:50051"));
    assert!(acceptable(b"unix"));
    assert!(acceptable(REPLACEMENT));
}

/// The client's request block, as grpc-go writes it: `:authority` (name index 1) and `te`
/// with incremental indexing, so a later request can refer to them.
fn request_block(authority: &[u8]) -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    block.push(0x44); // :path, indexed name 4, incremental indexing
    encode_string(b"/pluginregistration.Registration/GetInfo", &mut block);
    block.push(0x41); // :authority, indexed name 1, incremental indexing
    encode_string(authority, &mut block);
    block.push(0x40); // te, literal name, incremental indexing
    encode_string(b"te", &mut block);
    encode_string(b"trailers", &mut block);
    block
}

const REQUEST: &[(&str, &str)] = &[
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/pluginregistration.Registration/GetInfo"),
    (":authority", "localhost"),
    ("te", "trailers"),
];

#[test]
fn a_path_authority_becomes_localhost_and_the_other_frames_pass_unchanged() {
    let data = frame(DATA, END_STREAM, 1, &[0, 0, 0, 0, 0]);
    // PADDED and PRIORITY: a pad length, a dependency and weight, then 3 octets of padding.
    let mut payload = vec![3, 0, 0, 0, 0, 15];
    payload.extend(request_block(BAD));
    payload.extend([0, 0, 0]);
    let headers = frame(HEADERS, END_HEADERS | PADDED | PRIORITY, 1, &payload);
    let out = rewrite(&connection(&[headers, data.clone()])).unwrap();
    let got = frames(&out);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], (SETTINGS, 0, 0, vec![]));
    let (kind, flags, stream, block) = &got[1];
    assert_eq!((*kind, *flags, *stream), (HEADERS, END_HEADERS, 1));
    assert_eq!(decode(block), pairs(REQUEST));
    assert_eq!(frame(got[2].0, got[2].1, got[2].2, &got[2].3), data);
}

#[test]
fn huffman_coded_fields_are_decoded_and_an_acceptable_authority_is_kept() {
    // RFC 7541 C.4.1 and C.4.3: `:authority: www.example.com`, `custom-key: custom-value`,
    // Huffman-coded.
    let block = [
        0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90,
        0xf4, 0xff, 0x40, 0x88, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f, 0x89, 0x25, 0xa8,
        0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf,
    ];
    let headers = frame(HEADERS, END_HEADERS | END_STREAM, 5, &block);
    let got = frames(&rewrite(&connection(&[headers])).unwrap());
    assert_eq!(
        (got[1].0, got[1].1, got[1].2),
        (HEADERS, END_HEADERS | END_STREAM, 5)
    );
    assert_eq!(
        decode(&got[1].3),
        pairs(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ])
    );
}

#[test]
fn the_decoder_table_is_kept_across_the_blocks_of_a_connection() {
    let first = frame(HEADERS, END_HEADERS, 1, &request_block(BAD));
    // Newest first: te (62), :authority (63), :path (64). The size update keeps 4096.
    let mut indexed = integer(4096, 5, 0x20);
    indexed.extend([0x83, 0x86, 0x80 | 64, 0x80 | 63, 0x80 | 62]);
    let second = frame(HEADERS, END_HEADERS, 3, &indexed);
    let got = frames(&rewrite(&connection(&[first, second.clone()])).unwrap());
    assert_eq!(decode(&got[1].3), pairs(REQUEST));
    assert_eq!(got[2].2, 3);
    assert_eq!(decode(&got[2].3), pairs(REQUEST));

    // A size update to 0 empties the table: the same references then fail.
    let mut emptied = integer(0, 5, 0x20);
    emptied.extend([0x83, 0x80 | 62]);
    let third = frame(HEADERS, END_HEADERS, 5, &emptied);
    let first = frame(HEADERS, END_HEADERS, 1, &request_block(BAD));
    assert!(matches!(
        rewrite(&connection(&[first, third])),
        Err(Refused::Hpack(DecoderError::HeaderIndexOutOfBounds))
    ));
}

#[test]
fn a_block_in_continuations_is_joined_and_split_again_at_the_frame_size() {
    let mut block = request_block(BAD);
    let long = vec![b'x'; 20_000];
    encode_literal(b"x-long", &long, &mut block);
    let (a, rest) = block.split_at(100);
    let (b, c) = rest.split_at(10_000);
    let client = connection(&[
        frame(HEADERS, END_STREAM, 7, a),
        frame(CONTINUATION, 0, 7, b),
        frame(CONTINUATION, END_HEADERS, 7, c),
    ]);
    let got = frames(&rewrite(&client).unwrap());
    assert_eq!(got.len(), 3);
    assert_eq!((got[1].0, got[1].1, got[1].2), (HEADERS, END_STREAM, 7));
    assert_eq!(got[1].3.len(), MAX_FRAME);
    assert_eq!(
        (got[2].0, got[2].1, got[2].2),
        (CONTINUATION, END_HEADERS, 7)
    );
    let joined = [got[1].3.clone(), got[2].3.clone()].concat();
    let mut expected = pairs(REQUEST);
    expected.push((b"x-long".to_vec(), long));
    assert_eq!(decode(&joined), expected);
}

#[test]
fn bytes_fed_one_at_a_time_give_the_same_output() {
    let client = connection(&[
        frame(HEADERS, 0, 1, &request_block(BAD)[..7]),
        frame(CONTINUATION, END_HEADERS, 1, &request_block(BAD)[7..]),
        frame(DATA, END_STREAM, 1, &[0, 0, 0, 0, 0]),
        frame(HEADERS, END_HEADERS | END_STREAM, 3, &[0x83, 0x86, 0xbe]),
    ]);
    let whole = rewrite(&client).unwrap();
    let mut rewriter = Rewriter::default();
    let mut out = Vec::new();
    for byte in &client {
        feed_all(&mut rewriter, std::slice::from_ref(byte), &mut out).unwrap();
    }
    assert_eq!(out, whole);
    // SETTINGS, the joined request block, DATA, the second block.
    assert_eq!(frames(&whole).len(), 4);
}

#[test]
fn a_connection_that_is_not_http2_passes_through() {
    let client = b"GET / HTTP/1.1\r\nHost: %2Fx.sock\r\n\r\n";
    assert_eq!(rewrite(client).unwrap(), client);
    // Diverging inside the preface, too.
    let client = b"PRI * HTTP/1.1\r\n\r\n";
    assert_eq!(rewrite(client).unwrap(), client);
}

#[test]
fn what_the_shim_cannot_follow_or_bound_closes_the_connection() {
    let block = request_block(BAD);
    let too_long = frame(HEADERS, END_HEADERS, 1, &vec![0; MAX_FRAME + 1]);
    assert!(matches!(
        rewrite(&connection(&[too_long])),
        Err(Refused::FrameTooLarge(_))
    ));

    let mut parts = vec![frame(HEADERS, 0, 1, &[0; MAX_FRAME])];
    for _ in 0..4 {
        parts.push(frame(CONTINUATION, 0, 1, &[0; MAX_FRAME]));
    }
    assert!(matches!(
        rewrite(&connection(&parts)),
        Err(Refused::BlockTooLarge)
    ));

    // One 4000-byte entry in the table, referred to by one octet 20 times: 80 KB decoded.
    let mut bomb = vec![0x40];
    encode_string(b"x-big", &mut bomb);
    encode_string(&[b'b'; 4000], &mut bomb);
    bomb.extend([0xbe; 20]);
    let bomb = frame(HEADERS, END_HEADERS, 1, &bomb);
    assert!(matches!(
        rewrite(&connection(&[bomb])),
        Err(Refused::ListTooLarge)
    ));

    let interleaved = connection(&[frame(HEADERS, 0, 1, &block[..4]), frame(DATA, 0, 1, &[0])]);
    assert!(matches!(
        rewrite(&interleaved),
        Err(Refused::Interleaved(DATA))
    ));
    let other_stream = connection(&[
        frame(HEADERS, 0, 1, &block[..4]),
        frame(CONTINUATION, END_HEADERS, 3, &block[4..]),
    ]);
    assert!(matches!(
        rewrite(&other_stream),
        Err(Refused::Interleaved(CONTINUATION))
    ));
    let stray = connection(&[frame(CONTINUATION, END_HEADERS, 1, &block)]);
    assert!(matches!(rewrite(&stray), Err(Refused::StrayContinuation)));

    let overpadded = connection(&[frame(HEADERS, END_HEADERS | PADDED, 1, &[9, 0x83])]);
    assert!(matches!(rewrite(&overpadded), Err(Refused::Malformed)));

    // The server allows a 4096-byte table; a client may not grow it.
    let mut grown = integer(4097, 5, 0x20);
    grown.push(0x83);
    let grown = connection(&[frame(HEADERS, END_HEADERS, 1, &grown)]);
    assert!(matches!(
        rewrite(&grown),
        Err(Refused::Hpack(DecoderError::InvalidMaxDynamicSize))
    ));
}

#[tokio::test]
async fn the_shim_rewrites_what_the_server_reads_and_passes_what_it_writes() {
    let (mut client, server_side) = tokio::io::duplex(1 << 16);
    let mut server = AuthorityShim::new(server_side);
    let request = connection(&[frame(HEADERS, END_HEADERS, 1, &request_block(BAD))]);
    client.write_all(&request).await.unwrap();
    client.shutdown().await.unwrap();
    let mut read = Vec::new();
    server.read_to_end(&mut read).await.unwrap();
    assert_eq!(decode(&frames(&read)[1].3), pairs(REQUEST));

    let answer = frame(SETTINGS, 0x1, 0, &[]);
    server.write_all(&answer).await.unwrap();
    server.flush().await.unwrap();
    let mut back = vec![0; answer.len()];
    client.read_exact(&mut back).await.unwrap();
    assert_eq!(back, answer);
}

#[tokio::test]
async fn the_shim_fails_the_read_that_brings_what_it_refuses() {
    let (mut client, server_side) = tokio::io::duplex(1 << 16);
    let mut server = AuthorityShim::new(server_side);
    let stray = connection(&[frame(CONTINUATION, END_HEADERS, 1, &[0x83])]);
    client.write_all(&stray).await.unwrap();
    let mut read = Vec::new();
    let err = server.read_to_end(&mut read).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

/// Many small blocks that each decode to 60 KB: the rewriter stops taking input once the
/// server has enough to read, and the shim hands it all over in order.
fn amplified_client() -> Vec<u8> {
    let mut first = vec![0x40];
    encode_string(b"x-big", &mut first);
    encode_string(&[b'b'; 3900], &mut first);
    let mut parts = vec![frame(HEADERS, END_HEADERS, 1, &first)];
    for i in 0..200u32 {
        parts.push(frame(HEADERS, END_HEADERS, 3 + 2 * i, &[0xbe; 15]));
    }
    connection(&parts)
}

#[test]
fn the_output_waiting_for_the_server_stays_bounded() {
    let client = amplified_client();
    let mut rewriter = Rewriter::default();
    let mut out = Vec::new();
    let taken = rewriter.feed(&client, &mut out).unwrap();
    assert!(taken < client.len(), "stopped early");
    assert!(
        out.len() < 2 * OUT_HIGH_WATER,
        "{} bytes waiting",
        out.len()
    );
}

#[tokio::test]
async fn the_shim_delivers_an_amplified_stream_whole() {
    let client = amplified_client();
    let expected = rewrite(&client).unwrap();
    assert!(expected.len() > 10_000_000);
    let (mut writer, server_side) = tokio::io::duplex(1 << 16);
    let mut server = AuthorityShim::new(server_side);
    let sending = tokio::spawn(async move {
        writer.write_all(&client).await.unwrap();
        writer.shutdown().await.unwrap();
    });
    let mut read = Vec::new();
    server.read_to_end(&mut read).await.unwrap();
    sending.await.unwrap();
    assert!(read == expected, "the same bytes as fed at once");
}

//! The plugin's sockets as the kubelet's gRPC client (grpc-go) dials them: its `:authority` is
//! the socket path, percent-encoded, which h2 alone refuses (RST_STREAM PROTOCOL_ERROR, so the
//! plugin watcher never registers the driver). A raw HTTP/2 client over the real unix sockets
//! writes what grpc-go writes — HPACK with Huffman-coded strings and incremental indexing, so a
//! second request on the connection refers to the first one's entries — and reads the answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // helpers outside #[test] too

mod dra_plugin_support;

use std::path::Path;
use std::time::Duration;

use dra_plugin_support::{Node, Running, WAIT};
use loona_hpack::Decoder;
use prost::Message;
use tessera_dra_plugin::api::dra::{NodePrepareResourcesRequest, NodePrepareResourcesResponse};
use tessera_dra_plugin::api::pluginregistration::registration_server::{
    Registration, RegistrationServer,
};
use tessera_dra_plugin::api::pluginregistration::{
    InfoRequest, PluginInfo, RegistrationStatus, RegistrationStatusResponse,
};
use tessera_dra_plugin::authority::{AuthorityShim, PREFACE, encode_integer, encode_string};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PROTOCOL_ERROR: u32 = 0x1;

const GET_INFO: &str = "/pluginregistration.Registration/GetInfo";
const PREPARE: &str = "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodePrepareResources";
/// What grpc-go sends for a socket `/some/path/reg.sock`.
const AUTHORITY: &[u8] = b"%2Fsome%2Fpath%2Freg.sock";

/// RFC 7541 Appendix B, the symbols of [`AUTHORITY`]: (symbol, code, length in bits).
const HUFFMAN: &[(u8, u32, u32)] = &[
    (b'%', 0x15, 6),
    (b'.', 0x17, 6),
    (b'2', 0x02, 5),
    (b'F', 0x61, 7),
    (b'a', 0x03, 5),
    (b'c', 0x04, 5),
    (b'e', 0x05, 5),
    (b'g', 0x26, 6),
    (b'h', 0x27, 6),
    (b'k', 0x75, 7),
    (b'm', 0x29, 6),
    (b'o', 0x07, 5),
    (b'p', 0x2b, 6),
    (b'r', 0x2c, 6),
    (b's', 0x08, 5),
    (b't', 0x09, 5),
];

/// `text` Huffman-coded, padded with the most significant bits of EOS (ones).
fn huffman(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut bits, mut held) = (0u64, 0u32);
    for symbol in text {
        let &(_, code, len) = HUFFMAN
            .iter()
            .find(|(s, _, _)| s == symbol)
            .expect("a symbol of the table");
        bits = bits << len | u64::from(code);
        held += len;
        while held >= 8 {
            held -= 8;
            out.push((bits >> held) as u8);
        }
    }
    if held > 0 {
        out.push((bits << (8 - held)) as u8 | (0xff >> held));
    }
    out
}

/// A string literal with H = 1 (RFC 7541 §5.2).
fn huffman_string(text: &[u8], out: &mut Vec<u8>) {
    let coded = huffman(text);
    encode_integer(coded.len(), 7, 0x80, out);
    out.extend_from_slice(&coded);
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A gRPC request's header block as grpc-go writes it: `:path`, `:authority`, `content-type`
/// and `te` with incremental indexing (dynamic entries 65, 64, 63, 62 after it), `:authority`
/// Huffman-coded when `huffman_authority`.
fn first_block(path: &str, authority: &[u8], huffman_authority: bool) -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http (static 3 and 6)
    block.push(0x40 | 4); // :path
    encode_string(path.as_bytes(), &mut block);
    block.push(0x40 | 1); // :authority
    if huffman_authority {
        huffman_string(authority, &mut block);
    } else {
        encode_string(authority, &mut block);
    }
    block.push(0x40 | 31); // content-type
    encode_string(b"application/grpc", &mut block);
    block.push(0x40); // te, a literal name
    encode_string(b"te", &mut block);
    encode_string(b"trailers", &mut block);
    block
}

/// The same request again, every field from the tables: `:authority` is dynamic entry 64.
const SECOND_BLOCK: [u8; 6] = [0x83, 0x86, 0x80 | 65, 0x80 | 64, 0x80 | 63, 0x80 | 62];

/// An HTTP/2 answer to one request.
#[derive(Debug, Default)]
struct Answer {
    blocks: Vec<Vec<(String, String)>>,
    data: Vec<u8>,
    reset: Option<u32>,
    goaway: Option<u32>,
}

impl Answer {
    fn field(&self, block: usize, name: &str) -> Option<&str> {
        let fields = self.blocks.get(block)?;
        let found = fields.iter().find(|(n, _)| n == name)?;
        Some(found.1.as_str())
    }

    /// The one gRPC message of the body.
    fn message(&self) -> &[u8] {
        assert_eq!(self.data[0], 0, "not compressed");
        let len = u32::from_be_bytes(self.data[1..5].try_into().unwrap()) as usize;
        assert_eq!(self.data.len(), 5 + len);
        &self.data[5..]
    }

    /// HTTP 200, then the message, then trailers with grpc-status 0.
    fn assert_ok(&self) {
        assert_eq!(self.reset, None, "{self:?}");
        assert_eq!(self.field(0, ":status"), Some("200"), "{self:?}");
        assert_eq!(self.field(0, "content-type"), Some("application/grpc"));
        assert_eq!(self.field(1, "grpc-status"), Some("0"), "{self:?}");
    }
}

/// A client that speaks HTTP/2 frame by frame, as grpc-go would, over a unix socket.
struct RawClient {
    io: UnixStream,
    /// The server's HPACK context toward us.
    decoder: Decoder<'static>,
}

impl RawClient {
    async fn connect(socket: &Path) -> Self {
        let mut io = UnixStream::connect(socket).await.unwrap();
        io.write_all(PREFACE).await.unwrap();
        io.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
        Self {
            io,
            decoder: Decoder::new(),
        }
    }

    async fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let bytes = frame(kind, flags, stream, payload);
        self.io.write_all(&bytes).await.unwrap();
    }

    /// Sends one unary gRPC call on `stream` and reads its answer.
    async fn call(&mut self, stream: u32, block: &[u8], message: &[u8]) -> Answer {
        self.send(HEADERS, END_HEADERS, stream, block).await;
        let mut body = vec![0];
        body.extend_from_slice(&(message.len() as u32).to_be_bytes());
        body.extend_from_slice(message);
        self.send(DATA, END_STREAM, stream, &body).await;
        tokio::time::timeout(WAIT, self.answer(stream))
            .await
            .expect("an answer in time")
    }

    async fn next_frame(&mut self) -> Option<(u8, u8, u32, Vec<u8>)> {
        let mut head = [0u8; 9];
        self.io.read_exact(&mut head).await.ok()?;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let stream = u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        self.io.read_exact(&mut payload).await.ok()?;
        Some((head[3], head[4], stream, payload))
    }

    async fn answer(&mut self, stream: u32) -> Answer {
        let mut answer = Answer::default();
        while let Some((kind, flags, id, payload)) = self.next_frame().await {
            match kind {
                SETTINGS if flags & ACK == 0 => self.send(SETTINGS, ACK, 0, &[]).await,
                PING if flags & ACK == 0 => self.send(PING, ACK, 0, &payload).await,
                HEADERS => {
                    // Our small answers fit one frame; h2 neither pads nor prioritises them.
                    assert_eq!(flags & !END_STREAM, END_HEADERS, "one plain HEADERS frame");
                    // Every block is decoded, whatever its stream: the table goes on.
                    let fields = self.decoder.decode(&payload).unwrap();
                    if id == stream {
                        answer.blocks.push(
                            fields
                                .into_iter()
                                .map(|(n, v)| {
                                    (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap())
                                })
                                .collect(),
                        );
                        if flags & END_STREAM != 0 {
                            return answer;
                        }
                    }
                }
                DATA if id == stream => {
                    answer.data.extend_from_slice(&payload);
                    if flags & END_STREAM != 0 {
                        return answer;
                    }
                }
                RST_STREAM if id == stream => {
                    answer.reset = Some(u32::from_be_bytes(payload[..4].try_into().unwrap()));
                    return answer;
                }
                GOAWAY => {
                    answer.goaway = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
                    return answer;
                }
                _ => {}
            }
        }
        panic!("the connection closed before the answer: {answer:?}");
    }
}

#[test]
fn the_test_huffman_code_decodes_back() {
    let mut block = vec![0x40 | 1];
    huffman_string(AUTHORITY, &mut block);
    let fields = Decoder::new().decode(&block).unwrap();
    assert_eq!(fields, [(b":authority".to_vec(), AUTHORITY.to_vec())]);
    assert!(huffman(AUTHORITY).len() < AUTHORITY.len());
}

#[tokio::test]
async fn a_kubelet_that_names_the_socket_by_path_gets_the_plugin_info_twice_on_one_connection() {
    let running = Running::start(Node::one_gpu()).await;
    let socket = running.node.config().registration_socket();
    let mut client = RawClient::connect(&socket).await;

    let first = client
        .call(1, &first_block(GET_INFO, AUTHORITY, true), &[])
        .await;
    first.assert_ok();
    let info = PluginInfo::decode(first.message()).unwrap();
    assert_eq!(info.name, "gpu.tessera.dev");
    assert_eq!(info.r#type, "DRAPlugin");

    // Every field from the dynamic table the first request filled: the shim kept it.
    let second = client.call(3, &SECOND_BLOCK, &[]).await;
    second.assert_ok();
    assert_eq!(PluginInfo::decode(second.message()).unwrap(), info);

    // The DRA socket is dialled the same way, named by its own path.
    let endpoint = info.endpoint.replace('/', "%2F");
    let mut dra = RawClient::connect(Path::new(&info.endpoint)).await;
    let request = NodePrepareResourcesRequest { claims: vec![] }.encode_to_vec();
    let block = first_block(PREPARE, endpoint.as_bytes(), false);
    let answer = dra.call(1, &block, &request).await;
    answer.assert_ok();
    let prepared = NodePrepareResourcesResponse::decode(answer.message()).unwrap();
    assert!(prepared.claims.is_empty());
    let again = dra.call(3, &SECOND_BLOCK, &request).await;
    again.assert_ok();
    running.stop().await;
}

/// A `Registration` that answers a fixed name.
struct Fixed;

#[tonic::async_trait]
impl Registration for Fixed {
    async fn get_info(&self, _: Request<InfoRequest>) -> Result<Response<PluginInfo>, Status> {
        Ok(Response::new(PluginInfo {
            name: "fixed".into(),
            ..PluginInfo::default()
        }))
    }

    async fn notify_registration_status(
        &self,
        _: Request<RegistrationStatus>,
    ) -> Result<Response<RegistrationStatusResponse>, Status> {
        Ok(Response::new(RegistrationStatusResponse {}))
    }
}

/// The same request to a bare tonic server, without the shim and with it: h2 alone resets the
/// stream, as the kubelet saw. Should h2 ever accept such an authority, the first half fails
/// and the shim can go.
#[tokio::test]
async fn without_the_shim_h2_resets_the_stream_and_with_it_the_call_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    for shimmed in [false, true] {
        let socket = dir.path().join(format!("shimmed-{shimmed}.sock"));
        let listener = UnixListener::bind(&socket).unwrap();
        let server = Server::builder().add_service(RegistrationServer::new(Fixed));
        let task = if shimmed {
            let incoming =
                UnixListenerStream::new(listener).map(|conn| conn.map(AuthorityShim::new));
            tokio::spawn(server.serve_with_incoming(incoming))
        } else {
            tokio::spawn(server.serve_with_incoming(UnixListenerStream::new(listener)))
        };
        let mut client = RawClient::connect(&socket).await;
        let answer = client
            .call(1, &first_block(GET_INFO, AUTHORITY, true), &[])
            .await;
        if shimmed {
            answer.assert_ok();
            assert_eq!(PluginInfo::decode(answer.message()).unwrap().name, "fixed");
        } else {
            assert_eq!(answer.reset, Some(PROTOCOL_ERROR), "{answer:?}");
            assert!(answer.blocks.is_empty());
        }
        task.abort();
        let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    }
}

//! A minimal WebSocket client for the tests (RFC 6455, client side): the opening request,
//! masked binary frames out, frames in. Written here, independently of the broker's
//! `src/ws.rs`, so a mistake in one does not hide in the other.

use super::*;

/// The RFC 6455 §1.3 example key; its accept value is known.
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// `Sec-WebSocket-Accept` for [`WS_KEY`].
pub const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Sends an opening request with `extra_headers` (each ending in "\r\n") and returns the
/// response head (up to the blank line) and the socket.
pub fn ws_request(addr: SocketAddr, extra_headers: &str) -> (String, TcpStream) {
    let mut s = TcpStream::connect(addr).expect("connecting to the broker");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let head = ws_upgrade(&mut s, addr, extra_headers);
    (head, s)
}

/// Sends an opening request on `s` (any byte stream: TCP, TLS) and returns the response
/// head, up to the blank line.
pub fn ws_upgrade<S: Read + Write>(s: &mut S, addr: SocketAddr, extra_headers: &str) -> String {
    let request = format!(
        "GET /mqtt HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
    );
    s.write_all(request.as_bytes()).unwrap();
    s.flush().unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// One frame, masked with a fixed key as a client must (RFC 6455 §5.3).
pub fn ws_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    ws_frame_masked(opcode, fin, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}

/// One frame; `mask` None sends it unmasked (a protocol error from a client).
pub fn ws_frame_masked(opcode: u8, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = vec![(fin as u8) << 7 | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n <= 0xFFFF => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            f.extend_from_slice(&key);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

/// Reads one whole frame from `s` (TCP, or TLS for `wss://`): (FIN, opcode, payload).
/// None on EOF or timeout.
pub fn ws_read_frame<S: Read>(s: &mut S) -> Option<(bool, u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).ok()?;
    assert_eq!(
        head[1] & 0x80,
        0,
        "a server frame is never masked (RFC 6455 §5.1)"
    );
    let len = match head[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).ok()?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).ok()?;
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).ok()?;
    Some((head[0] & 0x80 != 0, head[0] & 0x0F, payload))
}

/// The stream a WebSocket runs over: TCP (`ws://`) or TLS (`wss://`).
pub enum WsIo {
    Tcp(TcpStream),
    /// Boxed: the TLS state is large.
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl WsIo {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            WsIo::Tcp(s) => s,
            WsIo::Tls(t) => &t.sock,
        }
    }
}

impl Read for WsIo {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            WsIo::Tcp(s) => s.read(buf),
            WsIo::Tls(t) => t.read(buf),
        }
    }
}

impl Write for WsIo {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            WsIo::Tcp(s) => s.write(buf),
            WsIo::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            WsIo::Tcp(s) => s.flush(),
            WsIo::Tls(t) => t.flush(),
        }
    }
}

/// MQTT over a WebSocket: writes go out as masked binary frames; reads return the payload
/// of binary frames (the server must send nothing else unasked [MQTT-6.0.0-1]).
pub struct WsStream {
    pub io: WsIo,
    pending: VecDeque<u8>,
}

impl WsStream {
    /// Opens a WebSocket with the `mqtt` subprotocol; panics unless the server agrees.
    pub fn open(addr: SocketAddr) -> WsStream {
        let (head, tcp) = ws_request(addr, "Sec-WebSocket-Protocol: mqtt\r\n");
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "upgrade refused: {head:?}"
        );
        tcp.set_read_timeout(None).unwrap();
        WsStream {
            io: WsIo::Tcp(tcp),
            pending: VecDeque::new(),
        }
    }

    /// Opens a WebSocket over TLS (`wss://`) with `config`, trusting the server as
    /// 127.0.0.1; panics unless the upgrade is accepted.
    pub fn open_tls(addr: SocketAddr, config: std::sync::Arc<rustls::ClientConfig>) -> WsStream {
        let tcp = TcpStream::connect(addr).expect("connecting to the broker");
        tcp.set_nodelay(true).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let conn = rustls::ClientConnection::new(config, name).expect("TLS client");
        let mut io = WsIo::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)));
        let head = ws_upgrade(&mut io, addr, "Sec-WebSocket-Protocol: mqtt\r\n");
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "upgrade refused: {head:?}"
        );
        io.tcp().set_read_timeout(None).unwrap();
        WsStream {
            io,
            pending: VecDeque::new(),
        }
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(&ws_frame(0x2, true, bytes))?;
        self.io.flush()
    }

    pub fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            let mut head = [0u8; 2];
            let n = self.io.read(&mut head[..1])?;
            if n == 0 {
                return Ok(0);
            }
            // The rest of the frame follows the first byte without waiting.
            let timeout = self.io.tcp().read_timeout()?;
            self.io.tcp().set_read_timeout(Some(WAIT))?;
            self.io.read_exact(&mut head[1..])?;
            let len = match head[1] & 0x7F {
                126 => {
                    let mut b = [0u8; 2];
                    self.io.read_exact(&mut b)?;
                    u16::from_be_bytes(b) as usize
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.io.read_exact(&mut b)?;
                    u64::from_be_bytes(b) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            self.io.read_exact(&mut payload)?;
            self.io.tcp().set_read_timeout(timeout)?;
            match head[0] & 0x0F {
                0x0 | 0x2 => self.pending.extend(payload),
                0x8 => return Ok(0), // close: the end of the stream
                op => panic!("unexpected frame opcode {op:#x} from the server"),
            }
        }
        let n = buf.len().min(self.pending.len());
        for (i, b) in self.pending.drain(..n).enumerate() {
            buf[i] = b;
        }
        Ok(n)
    }
}

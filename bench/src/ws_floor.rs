//! `wamage-bench ws-floor`: the least a Socket.IO server can do in the realtime fan-out
//! benchmark (`bench/realtime/fanout.mjs --servers floor`), to measure what the machine itself
//! allows with the official clients on the same cores.
//!
//! It speaks just enough Engine.IO 4 / Socket.IO 5 over a websocket for `io(url, { auth: {
//! token } })` (tokens `ref_…`, others refused with a connect error) and `emitWithAck('join', {
//! room })`, and has the benchmark's one REST route, `POST /api/v1/chat/channels/{id}/messages
//! {text}` → 201, which emits `chat.message.created` (shaped like Wamage's event) to the room
//! `chat:{id}`. No database, no authorisation, no per-socket task or queue: the frame is
//! encoded once and written to each socket with one `send` from the request's own task, so
//! what is left per recipient is the kernel's loopback TCP path. `/metrics` renders
//! `floor_fanout_seconds` (request arrival → last socket written) with Wamage's buckets.
//!
//! Pings are announced every 5 minutes (longer than any run), so no heartbeat traffic mixes in.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use anyhow::{Context, bail};
use base64::Engine as _;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use tokio::net::{TcpListener, TcpStream};

#[derive(clap::Parser)]
pub struct FloorArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
}

const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Largest request body or client frame accepted.
const MAX_BODY: usize = 1 << 20;

/// One websocket: written to directly; bytes the kernel did not take wait in `backlog` (in
/// order) for a flusher task.
struct Conn {
    stream: Arc<TcpStream>,
    backlog: Mutex<VecDeque<u8>>,
}

impl Conn {
    fn send(self: &Arc<Self>, frame: &[u8]) {
        let mut backlog = self.backlog.lock().expect("backlog lock");
        if !backlog.is_empty() {
            backlog.extend(frame);
            return;
        }
        let written = match self.stream.try_write(frame) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(_) => return,
        };
        if written < frame.len() {
            backlog.extend(&frame[written..]);
            let me = Arc::clone(self);
            tokio::spawn(async move { me.flush().await });
        }
    }

    async fn flush(&self) {
        loop {
            if self.stream.writable().await.is_err() {
                return;
            }
            let mut backlog = self.backlog.lock().expect("backlog lock");
            let (head, _) = backlog.as_slices();
            match self.stream.try_write(head) {
                Ok(n) => {
                    backlog.drain(..n);
                    if backlog.is_empty() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }
}

#[derive(Default)]
struct Histogram {
    counts: [u64; 14],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct State {
    rooms: Mutex<HashMap<String, Vec<Arc<Conn>>>>,
    hist: Mutex<Histogram>,
    sockets: AtomicU64,
    next_sid: AtomicU64,
}

pub async fn run(args: FloorArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    println!("listening at http://{}", listener.local_addr()?);
    let state = Arc::new(State::default());
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                stream.set_nodelay(true).ok();
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let _ = connection(state, Arc::new(stream)).await;
                });
            }
        }
    }
}

/// Reads until `buf` holds at least `n` bytes; false at end of stream.
async fn fill(stream: &TcpStream, buf: &mut Vec<u8>, n: usize) -> anyhow::Result<bool> {
    let mut chunk = [0u8; 16 * 1024];
    while buf.len() < n {
        stream.readable().await?;
        match stream.try_read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> anyhow::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// One HTTP/1.1 request from `buf` (more is read as needed); `None` at end of stream.
async fn read_request(stream: &TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<Option<Request>> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            bail!("request head too large");
        }
        let want = buf.len() + 1;
        if !fill(stream, buf, want).await? {
            return Ok(None);
        }
    };
    let head = std::str::from_utf8(&buf[..head_end])?.to_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if len > MAX_BODY {
        bail!("body too large");
    }
    if !fill(stream, buf, head_end + len).await? {
        return Ok(None);
    }
    let body = buf[head_end..head_end + len].to_vec();
    buf.drain(..head_end + len);
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

async fn respond(stream: &TcpStream, status: &str, kind: &str, body: &[u8]) -> anyhow::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    write_all(stream, &out).await
}

async fn connection(state: Arc<State>, stream: Arc<TcpStream>) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&stream, &mut buf).await? {
        let upgrade = req
            .headers
            .get("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        if req.path.starts_with("/socket.io/") && upgrade {
            return websocket(state, stream, req, buf).await;
        }
        http(&state, &stream, req).await?;
    }
    Ok(())
}

async fn http(state: &State, stream: &TcpStream, req: Request) -> anyhow::Result<()> {
    let arrived = Instant::now();
    if req.method == "GET" && req.path == "/metrics" {
        return respond(stream, "200 OK", "text/plain", metrics(state).as_bytes()).await;
    }
    if req.method == "GET" && req.path == "/health" {
        return respond(stream, "200 OK", "application/json", b"{\"status\":\"ok\"}").await;
    }
    let channel = req
        .path
        .strip_prefix("/api/v1/chat/channels/")
        .and_then(|p| p.strip_suffix("/messages"))
        .filter(|id| uuid::Uuid::parse_str(id).is_ok());
    let (Some(channel), "POST") = (channel, req.method.as_str()) else {
        return respond(
            stream,
            "404 Not Found",
            "application/json",
            b"{\"code\":\"not_found\"}",
        )
        .await;
    };
    let Some(text) = serde_json::from_slice::<Value>(&req.body)
        .ok()
        .and_then(|b| b.get("text").and_then(Value::as_str).map(str::to_owned))
    else {
        return respond(
            stream,
            "422 Unprocessable Entity",
            "application/json",
            b"{\"code\":\"validation_failed\",\"field\":\"text\"}",
        )
        .await;
    };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let message = json!({
        "id": uuid::Uuid::new_v4(),
        "channel_id": channel,
        "author": { "id": uuid::Uuid::nil(), "name": "Owner", "avatar_url": null },
        "text": text,
        "mentions": [],
        "mentions_channel": false,
        "thread_id": null,
        "reply_count": 0,
        "last_reply_at": null,
        "quote": null,
        "forwarded_from": null,
        "attachments": [],
        "reactions": [],
        "pinned": false,
        "edited_at": null,
        "deleted": false,
        "created_at": now,
        "expires_at": null,
        "read_by": [],
    });
    let packet = format!(
        "42{}",
        json!([
            "chat.message.created",
            {
                "id": uuid::Uuid::new_v4(),
                "type": "chat.message.created",
                "time": now,
                "data": { "channel_id": channel, "message": &message },
            }
        ])
    );
    let frame = ws_frame(0x1, packet.as_bytes());
    let members = state
        .rooms
        .lock()
        .expect("rooms lock")
        .get(&format!("chat:{channel}"))
        .cloned()
        .unwrap_or_default();
    for c in &members {
        c.send(&frame);
    }
    observe(state, arrived.elapsed().as_secs_f64());
    respond(
        stream,
        "201 Created",
        "application/json",
        message.to_string().as_bytes(),
    )
    .await
}

fn observe(state: &State, seconds: f64) {
    let mut h = state.hist.lock().expect("histogram lock");
    let i = BUCKETS
        .iter()
        .position(|le| seconds <= *le)
        .unwrap_or(BUCKETS.len());
    h.counts[i] += 1;
    h.sum += seconds;
    h.count += 1;
}

fn metrics(state: &State) -> String {
    let h = state.hist.lock().expect("histogram lock");
    let mut out = String::from("# TYPE floor_fanout_seconds histogram\n");
    let mut cum = 0;
    for (i, le) in BUCKETS.iter().enumerate() {
        cum += h.counts[i];
        out += &format!("floor_fanout_seconds_bucket{{le=\"{le}\"}} {cum}\n");
    }
    cum += h.counts[BUCKETS.len()];
    out += &format!("floor_fanout_seconds_bucket{{le=\"+Inf\"}} {cum}\n");
    out += &format!("floor_fanout_seconds_sum {}\n", h.sum);
    out += &format!("floor_fanout_seconds_count {}\n", h.count);
    out += &format!(
        "floor_connected_sockets {}\n",
        state.sockets.load(Ordering::Relaxed)
    );
    out
}

/// A server-to-client websocket frame (FIN set, unmasked).
fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 10);
    f.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= 0xFFFF => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// The next client frame from `buf` (reading as needed): opcode and unmasked payload.
async fn read_frame(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
) -> anyhow::Result<Option<(u8, Vec<u8>)>> {
    if !fill(stream, buf, 2).await? {
        return Ok(None);
    }
    let opcode = buf[0] & 0x0F;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7F {
        126 => {
            if !fill(stream, buf, 4).await? {
                return Ok(None);
            }
            (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if !fill(stream, buf, 10).await? {
                return Ok(None);
            }
            let n = u64::from_be_bytes(buf[2..10].try_into()?);
            (usize::try_from(n)?, 10)
        }
        n => (usize::from(n), 2),
    };
    if len > MAX_BODY {
        bail!("frame too large");
    }
    let mask_at = at;
    if masked {
        at += 4;
    }
    if !fill(stream, buf, at + len).await? {
        return Ok(None);
    }
    let mut payload = buf[at..at + len].to_vec();
    if masked {
        let key = [
            buf[mask_at],
            buf[mask_at + 1],
            buf[mask_at + 2],
            buf[mask_at + 3],
        ];
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    buf.drain(..at + len);
    Ok(Some((opcode, payload)))
}

async fn websocket(
    state: Arc<State>,
    stream: Arc<TcpStream>,
    req: Request,
    mut buf: Vec<u8>,
) -> anyhow::Result<()> {
    let key = req
        .headers
        .get("sec-websocket-key")
        .context("no Sec-WebSocket-Key")?;
    let accept = base64::engine::general_purpose::STANDARD
        .encode(Sha1::digest(format!("{key}{WS_GUID}").as_bytes()));
    write_all(
        &stream,
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let sid = state.next_sid.fetch_add(1, Ordering::Relaxed);
    let open = format!(
        "0{{\"sid\":\"e{sid}\",\"upgrades\":[],\"pingInterval\":300000,\"pingTimeout\":60000,\
         \"maxPayload\":1000000}}"
    );
    write_all(&stream, &ws_frame(0x1, open.as_bytes())).await?;
    let conn = Arc::new(Conn {
        stream: Arc::clone(&stream),
        backlog: Mutex::new(VecDeque::new()),
    });
    state.sockets.fetch_add(1, Ordering::Relaxed);
    let mut joined: Vec<String> = Vec::new();
    let result = async {
        while let Some((opcode, payload)) = read_frame(&stream, &mut buf).await? {
            match opcode {
                0x8 => break,
                0x9 => conn.send(&ws_frame(0xA, &payload)),
                0x1 => {
                    let text = String::from_utf8_lossy(&payload);
                    if let Some(reply) = packet(&state, &conn, &text, sid, &mut joined) {
                        conn.send(&ws_frame(0x1, reply.as_bytes()));
                    }
                }
                _ => {}
            }
        }
        anyhow::Ok(())
    }
    .await;
    state.sockets.fetch_sub(1, Ordering::Relaxed);
    let mut rooms = state.rooms.lock().expect("rooms lock");
    for r in joined {
        if let Some(v) = rooms.get_mut(&r) {
            v.retain(|c| !Arc::ptr_eq(c, &conn));
        }
    }
    result
}

/// An Engine.IO / Socket.IO packet from a client; the reply to send, if any.
fn packet(
    state: &State,
    conn: &Arc<Conn>,
    text: &str,
    sid: u64,
    joined: &mut Vec<String>,
) -> Option<String> {
    if let Some(auth) = text.strip_prefix("40") {
        let token = serde_json::from_str::<Value>(auth)
            .ok()
            .and_then(|a| a.get("token").and_then(Value::as_str).map(str::to_owned));
        return Some(match token {
            Some(t) if t.starts_with("ref_") => format!("40{{\"sid\":\"s{sid}\"}}"),
            _ => "44{\"message\":\"invalid or expired token\"}".to_owned(),
        });
    }
    let event = text.strip_prefix("42")?;
    let digits = event.bytes().take_while(u8::is_ascii_digit).count();
    let (ack, args) = event.split_at(digits);
    let args: Value = serde_json::from_str(args).ok()?;
    if args.get(0).and_then(Value::as_str) != Some("join") {
        return None;
    }
    let room = args
        .get(1)
        .and_then(|a| a.get("room").or(Some(a)))
        .and_then(Value::as_str)
        .filter(|r| r.starts_with("chat:"))
        .map(str::to_owned);
    let answer = match &room {
        Some(r) => {
            state
                .rooms
                .lock()
                .expect("rooms lock")
                .entry(r.clone())
                .or_default()
                .push(Arc::clone(conn));
            joined.push(r.clone());
            json!([{ "ok": true, "room": r }])
        }
        None => json!([{ "ok": false, "error": "invalid_room" }]),
    };
    (!ack.is_empty()).then(|| format!("43{ack}{answer}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_length_in_the_smallest_form() {
        assert_eq!(ws_frame(0x1, b"hi"), [0x81, 2, b'h', b'i']);
        let mid = ws_frame(0x1, &[b'x'; 300]);
        assert_eq!(&mid[..4], &[0x81, 126, 1, 44]);
        assert_eq!(mid.len(), 304);
        let big = ws_frame(0x2, &vec![0; 70_000]);
        assert_eq!(&big[..2], &[0x82, 127]);
        assert_eq!(u64::from_be_bytes(big[2..10].try_into().unwrap()), 70_000);
    }

    #[tokio::test]
    async fn connects_ref_tokens_and_joins_chat_rooms_with_an_ack() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let conn = Arc::new(Conn {
            stream: Arc::new(TcpStream::from_std(server).unwrap()),
            backlog: Mutex::new(VecDeque::new()),
        });
        let state = State::default();
        let mut joined = Vec::new();

        let ok = packet(&state, &conn, r#"40{"token":"ref_7"}"#, 3, &mut joined);
        assert_eq!(ok.as_deref(), Some(r#"40{"sid":"s3"}"#));
        let refused = packet(&state, &conn, r#"40{"token":"wam_x"}"#, 3, &mut joined);
        assert!(refused.unwrap().starts_with("44"));

        let ack = packet(
            &state,
            &conn,
            r#"4212["join",{"room":"chat:abc"}]"#,
            3,
            &mut joined,
        );
        assert_eq!(
            ack.as_deref(),
            Some(r#"4312[{"ok":true,"room":"chat:abc"}]"#)
        );
        assert_eq!(joined, vec!["chat:abc".to_owned()]);
        assert_eq!(state.rooms.lock().unwrap()["chat:abc"].len(), 1);
        let bad = packet(
            &state,
            &conn,
            r#"420["join",{"room":"org:1"}]"#,
            3,
            &mut joined,
        );
        assert!(bad.unwrap().contains("invalid_room"));
        // Other events and pongs get no answer.
        assert!(packet(&state, &conn, r#"42["typing",{}]"#, 3, &mut joined).is_none());
        assert!(packet(&state, &conn, "3", 3, &mut joined).is_none());
        drop(client);
    }
}

//! A tiny Socket.IO client for tests: Engine.IO v4 over a websocket, Socket.IO v5 packets on the
//! default namespace, JSON only (no binary attachments). Enough to connect with an `auth`
//! payload, emit (with or without an ack), and wait for events — the same frames the official
//! `socket.io-client` exchanges (the Node test in `web/realtime-tests` runs the real client).
//!
//! Engine.IO frames: `0` open, `2`/`3` ping/pong, `4` message. Socket.IO packets inside a
//! message: `0` connect (`0{auth}` / `0{"sid":…}`), `1` disconnect, `2` event (`2[name,data]`,
//! `2<ack id>[…]`), `3` ack (`3<id>[…]`), `4` connect error (`4{"message":…}`).

use std::{collections::VecDeque, time::Duration};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest},
};

/// How long waiting for a frame may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A connected Socket.IO client. Events that arrive while waiting for something else are kept,
/// in order, for the next `next_event`.
pub struct TestSocket {
    ws: Ws,
    /// The Socket.IO id the server gave this socket.
    pub sid: String,
    events: VecDeque<(String, Value)>,
    acks: VecDeque<(u64, Value)>,
    next_ack: u64,
    closed: bool,
}

/// One decoded Socket.IO packet.
enum Packet {
    Connect(Value),
    ConnectError(Value),
    Event(String, Value),
    Ack(u64, Value),
    Disconnect,
}

/// How a connection attempt ended when it did not connect.
#[derive(Debug)]
pub enum ConnectFailure {
    /// The server refused the namespace connection: the `message` of `connect_error`.
    Refused(String),
    /// Anything else (transport error, protocol surprise).
    Other(String),
}

impl ConnectFailure {
    /// The refusal message; panics on any other failure.
    pub fn refused(self) -> String {
        match self {
            Self::Refused(m) => m,
            Self::Other(e) => panic!("expected a connect_error, got: {e}"),
        }
    }
}

fn parse_packet(text: &str) -> Option<Packet> {
    let (kind, rest) = text.split_at_checked(1)?;
    // Namespace `/` is implicit; a leading digit run before `[` is an ack id.
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (id, body) = rest.split_at(digits);
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).ok()?
    };
    match kind {
        "0" => Some(Packet::Connect(body)),
        "1" => Some(Packet::Disconnect),
        "2" => {
            let Value::Array(mut args) = body else {
                return None;
            };
            if args.is_empty() {
                return None;
            }
            let name = args.remove(0).as_str()?.to_owned();
            let data = match args.len() {
                0 => Value::Null,
                1 => args.remove(0),
                _ => Value::Array(args),
            };
            Some(Packet::Event(name, data))
        }
        "3" => {
            let id = id.parse().ok()?;
            let data = match body {
                Value::Array(mut a) if !a.is_empty() => a.remove(0),
                other => other,
            };
            Some(Packet::Ack(id, data))
        }
        "4" => Some(Packet::ConnectError(body)),
        _ => None,
    }
}

impl TestSocket {
    /// Connects over a websocket to `base` (`http://127.0.0.1:port`) with `auth` as the handshake
    /// payload (`None`: no payload at all).
    pub async fn connect(base: &str, auth: Option<Value>) -> Result<Self, ConnectFailure> {
        let url = format!(
            "{}/socket.io/?EIO=4&transport=websocket",
            base.replacen("http", "ws", 1)
        );
        let mut request = url
            .into_client_request()
            .map_err(|e| ConnectFailure::Other(e.to_string()))?;
        // Browsers send this on upgrades too; the compression layer must leave the 101 alone.
        request.headers_mut().insert(
            "accept-encoding",
            "gzip, deflate, br".parse().expect("header"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| ConnectFailure::Other(format!("websocket: {e}")))?;
        let mut socket = Self {
            ws,
            sid: String::new(),
            events: VecDeque::new(),
            acks: VecDeque::new(),
            next_ack: 1,
            closed: false,
        };
        let open = socket
            .raw_frame()
            .await
            .ok_or_else(|| ConnectFailure::Other("no engine.io open frame".into()))?;
        if !open.starts_with('0') {
            return Err(ConnectFailure::Other(format!(
                "unexpected first frame {open}"
            )));
        }
        let connect = match auth {
            Some(a) => format!("0{a}"),
            None => "0".to_owned(),
        };
        socket.send_raw(connect).await;
        loop {
            match socket.packet().await {
                Some(Packet::Connect(body)) => {
                    socket.sid = body["sid"].as_str().unwrap_or_default().to_owned();
                    return Ok(socket);
                }
                Some(Packet::ConnectError(body)) => {
                    return Err(ConnectFailure::Refused(
                        body["message"].as_str().unwrap_or_default().to_owned(),
                    ));
                }
                Some(_) => {}
                None => return Err(ConnectFailure::Other("closed before connect".into())),
            }
        }
    }

    /// Connects with `auth: { token }`.
    pub async fn with_token(base: &str, token: &str) -> Result<Self, ConnectFailure> {
        Self::connect(base, Some(json!({ "token": token }))).await
    }

    async fn send_raw(&mut self, socket_io_packet: String) {
        let frame = format!("4{socket_io_packet}");
        let _ = self.ws.send(Message::text(frame)).await;
    }

    /// The next Engine.IO message payload (answering pings), `None` when closed or after
    /// [`WAIT`].
    async fn raw_frame(&mut self) -> Option<String> {
        loop {
            let msg = match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(msg))) => msg,
                Ok(_) => {
                    self.closed = true;
                    return None;
                }
                Err(_) => return None,
            };
            let Message::Text(text) = msg else {
                if matches!(msg, Message::Close(_)) {
                    self.closed = true;
                    return None;
                }
                continue;
            };
            let text = text.as_str();
            match text.split_at_checked(1) {
                Some(("2", _)) => {
                    let _ = self.ws.send(Message::text("3")).await;
                }
                Some(("4", packet)) => return Some(packet.to_owned()),
                Some(("0", _)) => return Some(text.to_owned()),
                Some(("1", _)) => {
                    self.closed = true;
                    return None;
                }
                _ => {}
            }
        }
    }

    async fn packet(&mut self) -> Option<Packet> {
        loop {
            let frame = self.raw_frame().await?;
            if let Some(p) = parse_packet(&frame) {
                return Some(p);
            }
        }
    }

    /// Reads one packet and keeps it if it is an event or an ack; `false` once the connection
    /// ended (or after [`WAIT`] without a frame).
    async fn pump_once(&mut self) -> bool {
        match self.packet().await {
            Some(Packet::Event(name, data)) => {
                self.events.push_back((name, data));
                true
            }
            Some(Packet::Ack(id, data)) => {
                self.acks.push_back((id, data));
                true
            }
            Some(Packet::Disconnect) => {
                // The server disconnected this socket from the namespace.
                self.closed = true;
                false
            }
            None => false,
            Some(_) => true,
        }
    }

    /// Emits `event` with `data` (no ack).
    pub async fn emit(&mut self, event: &str, data: &Value) {
        let packet = format!("2{}", json!([event, data]));
        self.send_raw(packet).await;
    }

    /// Emits `event` with `data` and waits for the server's ack (its first argument).
    pub async fn emit_with_ack(&mut self, event: &str, data: &Value) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        let packet = format!("2{id}{}", json!([event, data]));
        self.send_raw(packet).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(pos) = self.acks.iter().position(|(i, _)| *i == id) {
                return self.acks.remove(pos).map(|(_, v)| v).unwrap_or_default();
            }
            let more = tokio::time::timeout_at(deadline, self.pump_once()).await;
            assert!(
                matches!(more, Ok(true)),
                "no ack for {event} within {WAIT:?}"
            );
        }
    }

    /// Waits for the next `event` whose data satisfies `pred` (other frames are kept); `None`
    /// after `within`.
    pub async fn event_where(
        &mut self,
        event: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(pos) = self
                .events
                .iter()
                .position(|(name, data)| name == event && pred(data))
            {
                return self.events.remove(pos).map(|(_, v)| v);
            }
            match tokio::time::timeout_at(deadline, self.pump_once()).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return None,
            }
        }
    }

    /// The next `event` whose data satisfies `pred`; panics after [`WAIT`].
    pub async fn expect_event(&mut self, event: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.event_where(event, WAIT, pred)
            .await
            .unwrap_or_else(|| panic!("no {event} event within {WAIT:?}"))
    }

    /// Every `event` received within `within` (waits the whole time).
    pub async fn collect(&mut self, event: &str, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        while let Ok(true) = tokio::time::timeout_at(deadline, self.pump_once()).await {}
        let mut out = Vec::new();
        self.events.retain(|(name, data)| {
            if name == event {
                out.push(data.clone());
                false
            } else {
                true
            }
        });
        out
    }

    /// Whether the server disconnected the socket or closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Disconnects like `socket.disconnect()` and closes the websocket.
    pub async fn close(mut self) {
        self.send_raw("1".to_owned()).await;
        let _ = self.ws.close(None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_decode() {
        assert!(
            matches!(parse_packet(r#"0{"sid":"x"}"#), Some(Packet::Connect(v)) if v["sid"] == "x")
        );
        assert!(
            matches!(parse_packet(r#"2["typing",{"room":"r"}]"#), Some(Packet::Event(n, v)) if n == "typing" && v["room"] == "r")
        );
        assert!(
            matches!(parse_packet(r#"312[{"ok":true}]"#), Some(Packet::Ack(12, v)) if v["ok"] == true)
        );
        assert!(
            matches!(parse_packet(r#"4{"message":"no"}"#), Some(Packet::ConnectError(v)) if v["message"] == "no")
        );
        assert!(parse_packet("2[]").is_none());
        assert!(parse_packet("").is_none());
    }
}

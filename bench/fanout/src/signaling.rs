//! One WebSocket per session (SPEC section 3): request/reply and heartbeats.

use serde_json::{json, Value};
use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

pub type Result<T> = std::result::Result<T, String>;

pub struct Session {
    ws: WebSocket<TcpStream>,
    pub id: String,
    pub stream: String,
    pub closed: bool,
}

/// `ws://host:port/path` → `host:port`.
fn host_port(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("only ws:// URLs are supported, got {url}"))?;
    let hp = rest.split('/').next().unwrap_or(rest);
    Ok(if hp.contains(':') {
        hp.to_string()
    } else {
        format!("{hp}:80")
    })
}

impl Session {
    pub fn connect(url: &str, stream: &str) -> Result<Self> {
        let addr = host_port(url)?;
        let tcp = TcpStream::connect(&addr).map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_nodelay(true).ok();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let (ws, _resp) =
            tungstenite::client::client(url, tcp).map_err(|e| format!("websocket {url}: {e}"))?;
        ws.get_ref()
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            ws,
            id: String::new(),
            stream: stream.to_string(),
            closed: false,
        })
    }

    fn send(&mut self, v: &Value) -> Result<()> {
        let text = v.to_string();
        match self.ws.send(Message::text(text)) {
            Ok(()) => Ok(()),
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => self.flush(),
            Err(e) => Err(e.to_string()),
        }
    }

    fn flush(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.ws.flush() {
                Ok(()) => return Ok(()),
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err("websocket write stalled".into());
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Reads whatever frames are pending, without waiting; returns the JSON ones.
    pub fn drain(&mut self) -> Vec<Value> {
        let mut out = vec![];
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    if let Ok(v) = serde_json::from_str::<Value>(t.as_str()) {
                        out.push(v);
                    }
                }
                Ok(Message::Close(_)) => {
                    self.closed = true;
                    return out;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                    let _ = self.ws.flush();
                    return out;
                }
                Err(_) => {
                    self.closed = true;
                    return out;
                }
            }
        }
    }

    /// Sends `method` with `data` and waits for the reply with the same method.
    pub fn request(&mut self, method: &str, data: Value, timeout: Duration) -> Result<Value> {
        let req = json!({
            "version": "1.0", "method": method, "stream": self.stream,
            "session": self.id, "data": data,
        });
        self.send(&req)?;
        let deadline = Instant::now() + timeout;
        loop {
            for v in self.drain() {
                if v.get("method").and_then(Value::as_str) == Some(method) && v.get("err").is_some()
                {
                    if let Some(id) = v.get("session").and_then(Value::as_str) {
                        self.id = id.to_string();
                    }
                    let err = v.get("err").and_then(Value::as_i64).unwrap_or(-1);
                    if err != 0 {
                        return Err(format!(
                            "{method}: err {err}: {}",
                            v.get("err_msg").and_then(Value::as_str).unwrap_or("")
                        ));
                    }
                    return Ok(v);
                }
            }
            if self.closed {
                return Err(format!("{method}: websocket closed before the reply"));
            }
            if Instant::now() > deadline {
                return Err(format!("{method}: no reply in {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// `stream.publish` / `stream.play` with an offer; returns the answer SDP.
    pub fn negotiate(&mut self, method: &str, offer: &str) -> Result<String> {
        let reply = self.request(method, json!({ "sdp": offer }), Duration::from_secs(15))?;
        reply
            .pointer("/data/sdp")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{method}: reply has no data.sdp"))
    }

    /// Fire-and-forget heartbeat; replies are drained later.
    pub fn heartbeat(&mut self) {
        let req = json!({
            "version": "1.0", "method": "stream.heartbeat", "stream": self.stream,
            "session": self.id, "data": {},
        });
        if self.send(&req).is_err() {
            self.closed = true;
        }
        self.drain();
    }

    pub fn close(&mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

/// A peer's signaling: a pms-trio session or a Janus one, kept alive by the same loop.
pub enum Signal {
    Pms(Session),
    Janus(crate::janus::JanusSession),
}

impl Signal {
    pub fn heartbeat(&mut self) {
        match self {
            Signal::Pms(s) => s.heartbeat(),
            Signal::Janus(s) => s.heartbeat(),
        }
    }

    pub fn closed(&self) -> bool {
        match self {
            Signal::Pms(s) => s.closed,
            Signal::Janus(s) => s.closed,
        }
    }

    pub fn close(&mut self) {
        match self {
            Signal::Pms(s) => s.close(),
            Signal::Janus(s) => s.close(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn url() {
        assert_eq!(
            super::host_port("ws://127.0.0.1:8889/").unwrap(),
            "127.0.0.1:8889"
        );
        assert_eq!(super::host_port("ws://localhost").unwrap(), "localhost:80");
        assert!(super::host_port("wss://x").is_err());
    }
}

//! Janus VideoRoom signaling over Janus's WebSocket API (subprotocol `janus-protocol`), one
//! WebSocket, one Janus session and one plugin handle per peer (as a browser has them).
//!
//! Publisher: `create` (the room, H.264 + Opus, one publisher; "already exists" is fine),
//! `joinandconfigure` with the client's offer, Janus answers in the event. Subscriber: `join` as
//! `subscriber` with `streams: [{feed}]`, Janus offers in the event, the client answers with
//! `start`. A `keepalive` every [`KEEPALIVE`] keeps the session (Janus drops it after 60 s).

use serde_json::{json, Value};
use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

pub type Result<T> = std::result::Result<T, String>;

pub const KEEPALIVE: Duration = Duration::from_secs(25);
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

pub struct JanusSession {
    ws: WebSocket<TcpStream>,
    session_id: u64,
    handle_id: u64,
    next_tx: u64,
    last_keepalive: Instant,
    pub closed: bool,
}

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

/// The `error` of a Janus reply or of a VideoRoom event, as text.
fn error_of(v: &Value) -> Option<String> {
    if v.get("janus").and_then(Value::as_str) == Some("error") {
        return Some(format!(
            "janus error {}: {}",
            v.pointer("/error/code")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            v.pointer("/error/reason")
                .and_then(Value::as_str)
                .unwrap_or("")
        ));
    }
    let data = v.pointer("/plugindata/data")?;
    let reason = data.get("error")?;
    Some(format!(
        "videoroom error {}: {}",
        data.get("error_code").and_then(Value::as_i64).unwrap_or(0),
        reason.as_str().unwrap_or("")
    ))
}

impl JanusSession {
    /// Opens the WebSocket, creates a session and attaches `janus.plugin.videoroom`.
    pub fn connect(url: &str) -> Result<Self> {
        let addr = host_port(url)?;
        let tcp = TcpStream::connect(&addr).map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_nodelay(true).ok();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut req = url
            .into_client_request()
            .map_err(|e| format!("websocket {url}: {e}"))?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            tungstenite::http::HeaderValue::from_static("janus-protocol"),
        );
        let (ws, _resp) =
            tungstenite::client::client(req, tcp).map_err(|e| format!("websocket {url}: {e}"))?;
        ws.get_ref()
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let mut s = Self {
            ws,
            session_id: 0,
            handle_id: 0,
            next_tx: 1,
            last_keepalive: Instant::now(),
            closed: false,
        };
        let r = s.call(json!({ "janus": "create" }), false)?;
        s.session_id = r
            .pointer("/data/id")
            .and_then(Value::as_u64)
            .ok_or("create: no session id")?;
        let r = s.call(
            json!({ "janus": "attach", "plugin": "janus.plugin.videoroom" }),
            false,
        )?;
        s.handle_id = r
            .pointer("/data/id")
            .and_then(Value::as_u64)
            .ok_or("attach: no handle id")?;
        Ok(s)
    }

    fn send(&mut self, v: &Value) -> Result<()> {
        match self.ws.send(Message::text(v.to_string())) {
            Ok(()) => Ok(()),
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
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
            Err(e) => Err(e.to_string()),
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

    /// Sends `req` with a new transaction (and the session/handle ids once known) and returns the
    /// reply with that transaction: `success`, or with `asynchronous` the `event` after the `ack`.
    fn call(&mut self, mut req: Value, asynchronous: bool) -> Result<Value> {
        let tx = format!("t{}", self.next_tx);
        self.next_tx += 1;
        let what = req
            .pointer("/body/request")
            .or_else(|| req.get("janus"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        if let Some(o) = req.as_object_mut() {
            o.insert("transaction".into(), json!(tx));
            if self.session_id != 0 {
                o.insert("session_id".into(), json!(self.session_id));
            }
            if self.handle_id != 0 {
                o.insert("handle_id".into(), json!(self.handle_id));
            }
        }
        self.send(&req)?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            for v in self.drain() {
                if v.get("transaction").and_then(Value::as_str) != Some(tx.as_str()) {
                    continue;
                }
                if let Some(e) = error_of(&v) {
                    return Err(format!("{what}: {e}"));
                }
                match v.get("janus").and_then(Value::as_str) {
                    Some("ack") if asynchronous => {}
                    Some("success") if !asynchronous => return Ok(v),
                    Some("event") if asynchronous => return Ok(v),
                    _ => return Err(format!("{what}: unexpected reply {v}")),
                }
            }
            if self.closed {
                return Err(format!("{what}: websocket closed before the reply"));
            }
            if Instant::now() > deadline {
                return Err(format!("{what}: no reply in {REPLY_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn message(&mut self, body: Value, jsep: Option<Value>, asynchronous: bool) -> Result<Value> {
        let mut req = json!({ "janus": "message", "body": body });
        if let Some(j) = jsep {
            req["jsep"] = j;
        }
        self.call(req, asynchronous)
    }

    /// Creates room `room` for one H.264 + Opus publisher; an existing room is fine.
    pub fn create_room(&mut self, room: u64) -> Result<()> {
        let body = json!({
            "request": "create", "room": room, "publishers": 1, "videocodec": "h264",
            "audiocodec": "opus", "bitrate": 0, "fir_freq": 0, "notify_joining": false,
            "description": "pms-fanout",
        });
        match self.message(body, None, false) {
            Ok(_) => Ok(()),
            Err(e) if e.contains("videoroom error 427") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Joins `room` as its publisher with `offer`; returns (the answer SDP, the feed id).
    pub fn publish(&mut self, room: u64, offer: &str) -> Result<(String, u64)> {
        let body = json!({
            "request": "joinandconfigure", "ptype": "publisher", "room": room,
            "display": "pms-fanout", "audio": true, "video": true,
        });
        let ev = self.message(body, Some(json!({ "type": "offer", "sdp": offer })), true)?;
        let feed = ev
            .pointer("/plugindata/data/id")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("joinandconfigure: no feed id in {ev}"))?;
        Ok((jsep_sdp(&ev, "answer")?, feed))
    }

    /// Joins `room` as a subscriber of `feed`; returns Janus's offer SDP.
    pub fn subscribe(&mut self, room: u64, feed: u64) -> Result<String> {
        let body = json!({
            "request": "join", "ptype": "subscriber", "room": room,
            "streams": [{ "feed": feed }],
        });
        let ev = self.message(body, None, true)?;
        jsep_sdp(&ev, "offer")
    }

    /// `start` with the client's answer.
    pub fn start(&mut self, room: u64, answer: &str) -> Result<()> {
        let body = json!({ "request": "start", "room": room });
        let jsep = json!({ "type": "answer", "sdp": answer });
        self.message(body, Some(jsep), true).map(|_| ())
    }

    /// A `keepalive` when [`KEEPALIVE`] has passed since the last one; drains pending events.
    pub fn heartbeat(&mut self) {
        if self.last_keepalive.elapsed() >= KEEPALIVE {
            self.last_keepalive = Instant::now();
            let tx = format!("k{}", self.next_tx);
            self.next_tx += 1;
            let req = json!({ "janus": "keepalive", "session_id": self.session_id,
                              "transaction": tx });
            if self.send(&req).is_err() {
                self.closed = true;
            }
        }
        self.drain();
    }

    /// Closes the WebSocket; Janus then destroys the sessions made on it (and hangs up).
    pub fn close(&mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

fn jsep_sdp(ev: &Value, kind: &str) -> Result<String> {
    if ev.pointer("/jsep/type").and_then(Value::as_str) != Some(kind) {
        return Err(format!("expected a JSEP {kind} in {ev}"));
    }
    ev.pointer("/jsep/sdp")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("no jsep.sdp in {ev}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_read_from_replies_and_events() {
        let e = json!({"janus": "error", "error": {"code": 458, "reason": "No such session"}});
        assert_eq!(error_of(&e).unwrap(), "janus error 458: No such session");
        let e = json!({"janus": "success", "plugindata": {"data": {
            "videoroom": "event", "error_code": 427, "error": "Room 1 already exists"}}});
        assert!(error_of(&e).unwrap().starts_with("videoroom error 427"));
        let ok = json!({"janus": "event", "plugindata": {"data": {"videoroom": "joined"}}});
        assert!(error_of(&ok).is_none());
    }

    #[test]
    fn jsep_kind_is_checked() {
        let ev = json!({"jsep": {"type": "offer", "sdp": "v=0"}});
        assert_eq!(jsep_sdp(&ev, "offer").unwrap(), "v=0");
        assert!(jsep_sdp(&ev, "answer").is_err());
    }
}

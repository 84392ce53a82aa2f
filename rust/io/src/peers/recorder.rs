//! A recorder as a peer of its worker: a consumer of one stream that writes the stream's tracks
//! to a file (WebM, Matroska or fragmented MP4) through `pms_core::record::RecordWriter`.
//!
//! It owns the file, never a socket. The router hands it the stream's RTP like any player (by
//! the SSRC of each of its consumer tracks); the writer turns packets into file writes, which
//! wait in memory and reach the disk in few system calls: when [`WRITE_CHUNK`] bytes are
//! waiting, or [`FLUSH_EVERY`] after the first waiting byte, so a crash loses at most that plus
//! what the writer holds (a Matroska block as it comes; an MP4 fragment of at most 1 s).
//!
//! Files: named by formatting the `strftime` pattern the control plane gives in local time when
//! a file opens (`-1`, `-2`... appended when the name exists: a file is never overwritten).
//! With segments, a file ends at the first video keyframe after the segment time (a keyframe is
//! asked for when that time comes) and the next file starts with that keyframe.
//!
//! Endings: close by id (`record.stop`), the stream ending (`producer-closed`), no media for
//! [`NO_MEDIA_TIMEOUT`] (`no-media`), a write error (`write-failed`: the file is reported with
//! the error; a file deleted while open, e.g. its folder removed, counts as one: it is checked
//! every [`LINK_CHECK_EVERY`] and when it ends, since writes to it still succeed), shutdown. Each file is reported when it opens and when it ends
//! (`RecordingFileStarted`, `RecordingFile`), then the recorder's end (`RecordingEnded`).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{FileExt, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pms_core::codec;
use pms_core::media::{CodecName, ConsumerTrack, MediaKind, TransportId};
use pms_core::record::{Container, RecordWriter, TrackSpec, Write};

use crate::events::Event;
use crate::stats;
use crate::worker::{MediaOut, MediaSink, Message, Peer, PeerCtx};

/// Waiting bytes that are written at once.
pub(crate) const WRITE_CHUNK: usize = 256 * 1024;
/// Waiting bytes are written at the latest this long after the first of them.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// A recorder that gets no media for this long ends (`no-media`).
pub(crate) const NO_MEDIA_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the open file is checked to still have a name (one `fstat`).
pub(crate) const LINK_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Names tried with a `-N` suffix before giving up on opening a file.
const NAME_TRIES: u32 = 1000;

/// What to record and where (built by the engine).
pub(crate) struct RecorderSpec {
    pub stream: String,
    pub producer: TransportId,
    pub folder: PathBuf,
    /// `strftime` pattern of the file names (the control plane escapes a plain name's `%`).
    pub pattern: String,
    pub container: Container,
    /// Cut a new file at the first keyframe after this long (`None`: one file).
    pub segment: Option<Duration>,
    /// One consumer track per recorded producer track, and the writer's description of each.
    pub tracks: Vec<(ConsumerTrack, TrackSpec)>,
}

/// The engine's messages for a recorder (none yet: it is closed by id like any transport).
pub(crate) enum RecorderMessage {}

struct OpenFile {
    file: File,
    path: PathBuf,
    /// Bytes appended on disk so far.
    on_disk: u64,
    /// Appends not written yet.
    waiting: Vec<u8>,
    /// When the first waiting byte came.
    waiting_since: Option<Instant>,
    /// When the file was last found to still have a name.
    checked: Instant,
}

pub(crate) struct Recorder {
    spec: RecorderSpec,
    /// SSRC of each consumer track, in the writer's track order.
    ssrcs: Vec<u32>,
    codecs: Vec<CodecName>,
    video: Option<usize>,
    writer: RecordWriter,
    file: Option<OpenFile>,
    /// When the current file's segment time is up (then it ends at the next keyframe).
    segment_due: Option<Instant>,
    keyframe_asked: bool,
    last_media: Instant,
    /// Set inside the router's output; acted on at the flush (which has the handle).
    failed: Option<String>,
    /// Events raised inside the router's output, raised at the flush.
    events: Vec<Event>,
    flush_asked: bool,
    frames_dropped: u64,
    scratch: Vec<Write>,
}

impl Recorder {
    /// Checks that the container holds every track (the engine maps the error to 400/415).
    pub(crate) fn new(
        spec: RecorderSpec,
        now: Instant,
    ) -> Result<Recorder, pms_core::record::RecordError> {
        let specs: Vec<TrackSpec> = spec.tracks.iter().map(|(_, t)| t.clone()).collect();
        let writer = RecordWriter::new(spec.container, &specs)?;
        let ssrcs = spec.tracks.iter().map(|(c, _)| c.ssrc).collect();
        let codecs: Vec<CodecName> = spec.tracks.iter().map(|(c, _)| c.codec.name).collect();
        let video = spec
            .tracks
            .iter()
            .position(|(c, _)| c.kind == MediaKind::Video);
        Ok(Recorder {
            spec,
            ssrcs,
            codecs,
            video,
            writer,
            file: None,
            segment_due: None,
            keyframe_asked: false,
            last_media: now,
            failed: None,
            events: Vec::new(),
            flush_asked: false,
            frames_dropped: 0,
            scratch: Vec::new(),
        })
    }

    fn writer_for(&self) -> Option<RecordWriter> {
        let specs: Vec<TrackSpec> = self.spec.tracks.iter().map(|(_, t)| t.clone()).collect();
        RecordWriter::new(self.spec.container, &specs).ok()
    }

    /// Moves the writer's output into the file's waiting bytes (opening the file at the first
    /// bytes), writing when enough waits. Errors end the recording.
    fn drain(&mut self, id: TransportId, now: Instant, counters: &mut stats::Counters) {
        let mut writes = std::mem::take(&mut self.scratch);
        while let Some(w) = self.writer.poll_output() {
            writes.push(w);
        }
        for w in writes.drain(..) {
            if self.failed.is_some() {
                break;
            }
            if let Err(e) = self.apply(id, now, w, counters) {
                self.fail(e);
            }
        }
        self.scratch = writes;
        let due = self.file.as_ref().is_some_and(|f| {
            f.waiting.len() >= WRITE_CHUNK
                || f.waiting_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= FLUSH_EVERY)
        });
        if due && self.failed.is_none() {
            if let Err(e) = self
                .write_waiting(counters)
                .and_then(|()| self.check_linked(now, false))
            {
                self.fail(e);
            }
        }
    }

    /// Fails when the open file no longer has a name (deleted, or its folder removed): writes to
    /// it still succeed but reach a file nobody can open. Checked at most every
    /// [`LINK_CHECK_EVERY`], or now when `force`.
    fn check_linked(&mut self, now: Instant, force: bool) -> io::Result<()> {
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        if !force && now.saturating_duration_since(f.checked) < LINK_CHECK_EVERY {
            return Ok(());
        }
        f.checked = now;
        has_name(&f.file, &f.path)
    }

    fn apply(
        &mut self,
        id: TransportId,
        now: Instant,
        w: Write,
        counters: &mut stats::Counters,
    ) -> io::Result<()> {
        if self.file.is_none() {
            let (file, path) = open_new(&self.spec.folder, &self.spec.pattern)?;
            self.events.push(Event::RecordingFileStarted {
                id,
                path: path.to_string_lossy().into_owned(),
            });
            self.segment_due = self.spec.segment.map(|d| now + d);
            self.keyframe_asked = false;
            self.file = Some(OpenFile {
                file,
                path,
                on_disk: 0,
                waiting: Vec::with_capacity(WRITE_CHUNK),
                waiting_since: None,
                checked: now,
            });
        }
        match w.offset {
            None => {
                let f = self.file.as_mut().expect("opened above");
                if f.waiting.is_empty() {
                    f.waiting_since = Some(now);
                }
                f.waiting.extend_from_slice(&w.bytes);
                Ok(())
            }
            Some(offset) => {
                // A patch refers to appended bytes: write what waits first.
                self.write_waiting(counters)?;
                let f = self.file.as_mut().expect("opened above");
                f.file.write_all_at(&w.bytes, offset)?;
                Ok(())
            }
        }
    }

    fn write_waiting(&mut self, counters: &mut stats::Counters) -> io::Result<()> {
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        if f.waiting.is_empty() {
            return Ok(());
        }
        f.file.write_all(&f.waiting)?;
        f.on_disk += f.waiting.len() as u64;
        counters.add(stats::STAT_RECORD_BYTES, f.waiting.len() as u64);
        f.waiting.clear();
        f.waiting_since = None;
        Ok(())
    }

    fn fail(&mut self, e: io::Error) {
        if self.failed.is_none() {
            self.failed = Some(e.to_string());
        }
    }

    /// Ends the current file: the writer's last bytes (sizes, duration, index) are written and
    /// the file is reported. A failed recording reports its file with the error.
    fn end_file(&mut self, id: TransportId, now: Instant, counters: &mut stats::Counters) {
        if self.failed.is_none() {
            self.writer.finish();
            self.drain(id, now, counters);
            if self.failed.is_none() {
                if let Err(e) = self
                    .write_waiting(counters)
                    .and_then(|()| self.check_linked(now, true))
                {
                    self.fail(e);
                }
            }
        }
        let dropped: u64 = self.writer.stats().frames_dropped.iter().sum();
        counters.add(
            stats::STAT_RECORD_FRAMES_DROPPED,
            dropped.saturating_sub(self.frames_dropped),
        );
        self.frames_dropped = 0;
        let Some(f) = self.file.take() else {
            return;
        };
        let error = self.failed.clone().unwrap_or_default();
        if error.is_empty() {
            counters.add(stats::STAT_RECORD_FILES, 1);
        } else {
            counters.add(stats::STAT_RECORD_FAILURES, 1);
        }
        self.events.push(Event::RecordingFile {
            id,
            path: f.path.to_string_lossy().into_owned(),
            bytes: f.on_disk,
            duration_ms: u64::try_from(self.writer.stats().last_frame_ns / 1_000_000).unwrap_or(0),
            error,
        });
    }

    /// Whether packet `pkt` of track `track` starts a video keyframe.
    fn keyframe_start(&self, track: usize, pkt: &[u8]) -> bool {
        if Some(track) != self.video {
            return false;
        }
        let Ok(view) = pms_core::rtp::parse(pkt) else {
            return false;
        };
        codec::inspect(self.codecs[track], view.payload).keyframe_start
    }

    fn raise_events(&mut self, ctx: &mut PeerCtx<'_>) {
        for e in self.events.drain(..) {
            ctx.event(e);
        }
    }

    /// Asks the stream's source for a keyframe (as a player's PLI would).
    fn ask_keyframe(&mut self, ctx: &mut PeerCtx<'_>) {
        let (Some(v), false) = (self.video, self.keyframe_asked) else {
            return;
        };
        self.keyframe_asked = true;
        let mut pli = Vec::with_capacity(12);
        pms_core::rtcp::write_pli(&mut pli, 1, self.ssrcs[v]);
        let (id, now) = (ctx.id(), ctx.now());
        ctx.with_router(self, |r, out| r.handle_rtcp(now, id, &pli, out));
    }

    /// The next time the recorder must act: waiting bytes, the no-media limit, the segment.
    fn arm(&self, ctx: &mut PeerCtx<'_>) {
        let mut at = self.last_media + NO_MEDIA_TIMEOUT;
        if let Some(t) = self.file.as_ref().and_then(|f| f.waiting_since) {
            at = at.min(t + FLUSH_EVERY);
        }
        if let (Some(t), false) = (self.segment_due, self.keyframe_asked) {
            at = at.min(t);
        }
        ctx.set_deadline(Some(at));
    }
}

impl MediaSink for Recorder {
    fn send_media(&mut self, out: &mut MediaOut<'_>, pkt: &[u8], rtcp: bool) {
        if rtcp || self.failed.is_some() || pkt.len() < 12 {
            return;
        }
        let ssrc = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
        let Some(track) = self.ssrcs.iter().position(|s| *s == ssrc) else {
            return;
        };
        let now = Instant::now();
        self.last_media = now;
        let id = out.id();
        if self.segment_due.is_some_and(|t| now >= t)
            && self.file.is_some()
            && self.keyframe_start(track, pkt)
        {
            self.end_file(id, now, out.counters());
            match self.writer_for() {
                Some(w) => self.writer = w,
                None => self.fail(io::Error::other("cannot start the next segment")),
            }
            self.segment_due = None;
        }
        if self.failed.is_some() {
            return;
        }
        let _ = self.writer.handle_rtp(now, track, pkt);
        self.drain(id, now, out.counters());
        if !self.flush_asked {
            self.flush_asked = true;
            out.flush_later();
        }
    }
}

impl Peer for Recorder {
    fn start(&mut self, ctx: &mut PeerCtx<'_>) -> Result<(), &'static str> {
        let (id, now) = (ctx.id(), ctx.now());
        let tracks: Vec<ConsumerTrack> = self.spec.tracks.iter().map(|(c, _)| c.clone()).collect();
        if let Err(e) = ctx
            .router()
            .add_consumer(id, self.spec.producer, tracks, now)
        {
            log::info!(target: "pms_io::record", "recorder {id} of {}: {e}", self.spec.stream);
            return Err("producer-closed");
        }
        ctx.counters().add(stats::STAT_RECORDINGS, 1);
        // Start at a keyframe: the cache's, or the source's answer to a PLI.
        ctx.with_router(self, |r, out| r.consumer_connected(id, now, out));
        self.last_media = now;
        self.arm(ctx);
        Ok(())
    }

    fn on_message(&mut self, _ctx: &mut PeerCtx<'_>, msg: Message) {
        let _ = msg.downcast::<RecorderMessage>();
    }

    fn on_flush(&mut self, ctx: &mut PeerCtx<'_>) {
        self.flush_asked = false;
        self.raise_events(ctx);
        if let Some(e) = self.failed.clone() {
            log::error!(target: "pms_io::record", "recorder {} of {}: {e}", ctx.id(), self.spec.stream);
            ctx.close_me("write-failed");
            return;
        }
        if self.segment_due.is_some_and(|t| ctx.now() >= t) {
            self.ask_keyframe(ctx);
        }
        self.arm(ctx);
    }

    fn on_deadline(&mut self, ctx: &mut PeerCtx<'_>) {
        let now = ctx.now();
        if now.saturating_duration_since(self.last_media) >= NO_MEDIA_TIMEOUT {
            ctx.close_me("no-media");
            return;
        }
        let waited = self
            .file
            .as_ref()
            .and_then(|f| f.waiting_since)
            .is_some_and(|t| now.saturating_duration_since(t) >= FLUSH_EVERY);
        if waited {
            if let Err(e) = self
                .write_waiting(ctx.counters())
                .and_then(|()| self.check_linked(now, false))
            {
                self.fail(e);
            }
        }
        if self.segment_due.is_some_and(|t| now >= t) {
            self.ask_keyframe(ctx);
        }
        if self.failed.is_some() {
            self.on_flush(ctx);
            return;
        }
        self.arm(ctx);
    }

    fn close(&mut self, ctx: &mut PeerCtx<'_>, reason: &'static str) {
        let (id, now) = (ctx.id(), ctx.now());
        self.end_file(id, now, ctx.counters());
        ctx.counters().sub(stats::STAT_RECORDINGS, 1);
        self.raise_events(ctx);
        let reason = if self.failed.is_some() {
            "write-failed"
        } else {
            reason
        };
        ctx.event(Event::RecordingEnded { id, reason });
    }
}

/// An error when open file `file` (opened as `path`) has no name left (link count 0).
fn has_name(file: &File, path: &Path) -> io::Result<()> {
    if file.metadata()?.nlink() == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} was deleted while recording", path.display()),
        ));
    }
    Ok(())
}

/// Opens a new file named by `pattern` (strftime, local time) in `folder`, never replacing one.
fn open_new(folder: &Path, pattern: &str) -> io::Result<(File, PathBuf)> {
    let name = strftime_local(pattern)?;
    let (base, ext) = match name.rfind('.') {
        Some(dot) if dot > 0 => (&name[..dot], &name[dot..]),
        _ => (name.as_str(), ""),
    };
    for n in 0..NAME_TRIES {
        let candidate = if n == 0 {
            name.clone()
        } else {
            format!("{base}-{n}{ext}")
        };
        let path = folder.join(&candidate);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot create {}: {e}", path.display()),
                ))
            }
        }
    }
    Err(io::Error::other(format!(
        "{NAME_TRIES} files named like {name} exist already"
    )))
}

/// `strftime(pattern)` for the local time now. A name is one path component: `/` and NUL are
/// refused (the control plane has checked the name already).
fn strftime_local(pattern: &str) -> io::Result<String> {
    if pattern.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a file name pattern has no '/'",
        ));
    }
    let c_pattern = CString::new(pattern).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a file name pattern has no NUL",
        )
    })?;
    // SAFETY: time(NULL) and localtime_r write only into `tm`, which lives on this stack; strftime
    // writes at most `buf.len()` bytes into `buf` and returns how many (0 when it did not fit).
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return Err(io::Error::other("localtime_r failed"));
        }
        let mut buf = vec![0u8; pattern.len() * 4 + 64];
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), c_pattern.as_ptr(), &tm);
        if n == 0 && !pattern.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the file name is too long",
            ));
        }
        buf.truncate(n);
        String::from_utf8(buf)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the file name is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_pattern_and_never_replace_a_file() {
        let dir = std::env::temp_dir().join(format!("pms-rec-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (_a, first) = open_new(&dir, "cam %% 100%%.mkv").unwrap();
        assert_eq!(first.file_name().unwrap(), "cam % 100%.mkv");
        let (_b, second) = open_new(&dir, "cam %% 100%%.mkv").unwrap();
        assert_eq!(second.file_name().unwrap(), "cam % 100%-1.mkv");
        let (_c, dated) = open_new(&dir, "seg-%Y%m%d-%H%M%S.webm").unwrap();
        let name = dated.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("seg-20")
                && name.ends_with(".webm")
                && name.len() == "seg-YYYYmmdd-HHMMSS.webm".len()
        );
        assert!(open_new(&dir, "a/b.mkv").is_err());
        assert!(open_new(&dir.join("gone"), "x.mkv").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_whose_folder_is_removed_has_no_name() {
        let dir = std::env::temp_dir().join(format!("pms-rec-gone-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut file, path) = open_new(&dir, "a.webm").unwrap();
        assert!(has_name(&file, &path).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
        file.write_all(b"still writable").unwrap(); // why the recorder must look
        let e = has_name(&file, &path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("a.webm was deleted"), "{e}");
    }
}

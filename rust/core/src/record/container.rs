//! What the container writers share: the container kinds, which codecs each holds, the
//! description of a track once its configuration is known, the writer interface, and the
//! errors a recording start can meet.

use super::sink::Sink;
use crate::media::{CodecName, MediaKind};

/// The container, chosen by the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    /// `.webm`: VP8, VP9, AV1, Opus.
    Webm,
    /// `.mkv`: everything the server forwards.
    Mkv,
    /// `.mp4` (fragmented): H.264, H.265, AAC, Opus.
    Mp4,
}

impl Container {
    /// From a file name's extension (case-insensitive); `None` for any other.
    pub fn from_file_name(name: &str) -> Option<Container> {
        let (_, ext) = name.rsplit_once('.')?;
        Some(match ext.to_ascii_lowercase().as_str() {
            "webm" => Container::Webm,
            "mkv" => Container::Mkv,
            "mp4" => Container::Mp4,
            _ => return None,
        })
    }

    pub fn extension(self) -> &'static str {
        match self {
            Container::Webm => "webm",
            Container::Mkv => "mkv",
            Container::Mp4 => "mp4",
        }
    }

    /// Whether this container holds `codec` (as we write it).
    pub fn holds(self, codec: CodecName) -> bool {
        use CodecName::*;
        match self {
            Container::Webm => matches!(codec, Vp8 | Vp9 | Av1 | Opus),
            Container::Mkv => true,
            Container::Mp4 => matches!(codec, H264 | H265 | Aac | Opus),
        }
    }
}

/// Why a recording cannot start. [`RecordError::status`] is the signaling `err` code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// The file name's extension is not `.webm`, `.mkv` or `.mp4` (400).
    UnknownExtension(String),
    /// The container cannot hold this codec, e.g. VP8 in `.mp4`, H.264 in `.webm` (415).
    UnsupportedCodec {
        container: Container,
        codec: CodecName,
    },
    /// An AAC track without a usable `config=` in its fmtp (415: we cannot describe it).
    MissingCodecConfig(CodecName),
    /// No track, or more than [`MAX_TRACKS`] (400).
    BadTrackCount(usize),
}

/// Most tracks per recording (a stream has one audio and one video track; room to spare).
pub const MAX_TRACKS: usize = 8;

impl RecordError {
    pub fn status(&self) -> u16 {
        match self {
            RecordError::UnknownExtension(_) | RecordError::BadTrackCount(_) => 400,
            RecordError::UnsupportedCodec { .. } | RecordError::MissingCodecConfig(_) => 415,
        }
    }
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::UnknownExtension(n) => write!(f, "unsupported file extension: {n}"),
            RecordError::UnsupportedCodec { container, codec } => write!(
                f,
                "{} cannot be recorded to .{}",
                codec.encoding_name(),
                container.extension()
            ),
            RecordError::MissingCodecConfig(c) => {
                write!(f, "{} track without its configuration", c.encoding_name())
            }
            RecordError::BadTrackCount(n) => write!(f, "cannot record {n} tracks"),
        }
    }
}

impl std::error::Error for RecordError {}

/// One track as the container writers see it, once its configuration is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    pub codec: CodecName,
    /// RTP clock rate (90000 for video; the sample rate for audio).
    pub clock_rate: u32,
    /// Audio channels (0 for video).
    pub channels: u16,
    /// Picture size (0 when unknown).
    pub width: u32,
    pub height: u32,
    /// `avcC` / `hvcC` / `av1C` record for H.264 / H.265 / AV1, the AudioSpecificConfig for
    /// AAC, empty otherwise.
    pub config: Vec<u8>,
}

impl TrackInfo {
    pub fn kind(&self) -> MediaKind {
        self.codec.kind()
    }
}

/// A container writer: a header once every track is known, frames on the recording's
/// timeline (ns), then a finish. Frames arrive in decoding order per track and roughly in time
/// order across tracks.
pub trait ContainerWriter: std::fmt::Debug + Send {
    fn start(&mut self, tracks: &[TrackInfo], out: &mut Sink);
    fn frame(&mut self, track: usize, time_ns: i64, keyframe: bool, data: &[u8], out: &mut Sink);
    /// Ends the file; writes what makes it seekable (sizes, duration, index).
    fn finish(&mut self, out: &mut Sink);
}

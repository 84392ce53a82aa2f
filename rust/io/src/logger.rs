//! The core's `log` records, filtered by level and by area tag, delivered as events.
//!
//! Tags follow the seeds' `workerTags` (`info`, `ice`, `dtls`, `rtp`, `srtp`, `rtcp`, `rtx`,
//! `bwe`, ...): a record's tag comes from its target (module path). Records whose tag is not
//! enabled are dropped before they are formatted.

use std::sync::{Arc, OnceLock, RwLock};

use crate::events::{Event, EventQueue};

struct Filter {
    level: log::LevelFilter,
    tags: Vec<String>,
    queue: Arc<EventQueue>,
}

static FILTER: OnceLock<RwLock<Option<Filter>>> = OnceLock::new();

struct CoreLogger;

/// Maps a record target to a worker tag.
pub fn tag_of(target: &str) -> &'static str {
    const AREAS: [(&str, &str); 10] = [
        ("ice", "ice"),
        ("stun", "ice"),
        ("srtp", "srtp"),
        ("dtls", "dtls"),
        ("rtcp", "rtcp"),
        ("retransmit", "rtx"),
        ("rtx", "rtx"),
        ("remb", "bwe"),
        ("router", "rtp"),
        ("rtp", "rtp"),
    ];
    for (needle, tag) in AREAS {
        if target.contains(needle) {
            return tag;
        }
    }
    "info"
}

impl log::Log for CoreLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        let Some(lock) = FILTER.get() else {
            return false;
        };
        let Ok(guard) = lock.read() else { return false };
        match guard.as_ref() {
            Some(f) => {
                metadata.level() <= f.level && f.tags.iter().any(|t| t == tag_of(metadata.target()))
            }
            None => false,
        }
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let Some(lock) = FILTER.get() else { return };
        let Ok(guard) = lock.read() else { return };
        if let Some(f) = guard.as_ref() {
            f.queue.push(Event::Log {
                level: record.level(),
                tag: tag_of(record.target()),
                message: format!("{}: {}", record.target(), record.args()),
            });
        }
    }

    fn flush(&self) {}
}

/// Routes the process's `log` records to `queue`. Called once per engine; a later engine takes
/// over (tests start several).
pub fn install(level: log::LevelFilter, tags: Vec<String>, queue: Arc<EventQueue>) {
    let lock = FILTER.get_or_init(|| RwLock::new(None));
    if let Ok(mut guard) = lock.write() {
        *guard = Some(Filter { level, tags, queue });
    }
    // Fails when a logger is already installed (ours, from an earlier engine): the filter
    // above is what changes.
    let _ = log::set_logger(&CoreLogger);
    log::set_max_level(level);
}

/// Parses the config's level name.
pub fn parse_level(name: &str) -> Option<log::LevelFilter> {
    Some(match name {
        "debug" => log::LevelFilter::Debug,
        "info" => log::LevelFilter::Info,
        "warn" | "warning" => log::LevelFilter::Warn,
        "error" => log::LevelFilter::Error,
        "none" | "off" => log::LevelFilter::Off,
        _ => return None,
    })
}

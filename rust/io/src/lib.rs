//! pms-io: worker threads, UDP sockets and timers that drive `pms-core`.

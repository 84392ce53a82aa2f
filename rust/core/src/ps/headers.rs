//! Parsers of the PS headers on complete byte slices (the state machine in `mod.rs` collects
//! exactly the bytes each one needs). Every function returns `None` on bytes it cannot accept;
//! none indexes past its input.

/// Bytes of an MPEG-2 pack header up to and including `pack_stuffing_length`.
pub const PACK_MPEG2: usize = 14;
/// Bytes of an MPEG-1 pack header (ISO/IEC 11172-1 2.4.3.2).
pub const PACK_MPEG1: usize = 12;
/// Start code + 16-bit length of every start code above 0xBA (13818-1 2.5.3.5, 2.5.4.1, 2.4.3.6).
pub const LENGTH_HEADER: usize = 6;
/// Start code + length + the three fixed bytes of an MPEG-2 PES header (flags, flags,
/// `PES_header_data_length`).
pub const PES_FIXED: usize = 9;

/// Stream ids (13818-1 Table 2-18).
pub const PACK_START: u8 = 0xBA;
pub const PROGRAM_END: u8 = 0xB9;
pub const SYSTEM_HEADER: u8 = 0xBB;
pub const PSM: u8 = 0xBC;

/// The length of the pack header starting `00 00 01 BA` whose first 5 bytes are `h` (the
/// stuffing, if any, follows and is skipped separately): MPEG-2 (`01` marker bits) or MPEG-1
/// (`0010`). `None`: neither.
pub fn pack_header_len(h: &[u8]) -> Option<usize> {
    let b4 = *h.get(4)?;
    if b4 & 0xC0 == 0x40 {
        Some(PACK_MPEG2)
    } else if b4 & 0xF0 == 0x20 {
        Some(PACK_MPEG1)
    } else {
        None
    }
}

/// The `pack_stuffing_length` of a complete 14-byte MPEG-2 pack header.
pub fn pack_stuffing(h: &[u8]) -> usize {
    h.get(13).map_or(0, |b| (b & 0x07) as usize)
}

/// The SCR base (90 kHz, 33 bits) of an MPEG-2 pack header, for diagnostics.
#[allow(dead_code)] // used by tests; kept next to the layout it reads
pub fn pack_scr(h: &[u8]) -> Option<u64> {
    let b = h.get(4..10)?;
    Some(
        ((b[0] as u64 >> 3) & 0x07) << 30
            | ((b[0] as u64) & 0x03) << 28
            | (b[1] as u64) << 20
            | ((b[2] as u64 >> 3) & 0x1f) << 15
            | ((b[2] as u64) & 0x03) << 13
            | (b[3] as u64) << 5
            | (b[4] as u64 >> 3),
    )
}

/// One `elementary_stream_map` entry of a PSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PsmEntry {
    pub stream_type: u8,
    pub stream_id: u8,
}

/// Upper bound of PSM entries kept (13818-1 limits the PSM to 1018 bytes: at most 254 entries;
/// cameras list 1 to 4).
pub const MAX_PSM_ENTRIES: usize = 16;

/// Parses a whole PSM (`00 00 01 BC`, length, body; 13818-1 2.5.4.1) into its entries.
///
/// The CRC_32 is not checked: Hikvision writes `00 00 00 00` and other cameras compute it
/// wrongly, and a PSM that lies is no worse than a PES that does. `es_map_length` is
/// recomputed from the PSM length when it claims more than is there (as ireader/media-server
/// does); entries whose `elementary_stream_info_length` runs past the end are dropped.
pub fn parse_psm(p: &[u8], out: &mut Vec<PsmEntry>) -> Option<()> {
    out.clear();
    let len = u16::from_be_bytes([*p.get(4)?, *p.get(5)?]) as usize;
    let end = (LENGTH_HEADER + len).min(p.len());
    // current_next_indicator etc. (6), marker (7), program_stream_info_length (8..10).
    let info_len = u16::from_be_bytes([*p.get(8)?, *p.get(9)?]) as usize;
    let mut at = 10 + info_len;
    let map_len = u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]) as usize;
    at += 2;
    // The map ends before the 4-byte CRC; trust the smaller of the two.
    let map_end = (at + map_len).min(end.saturating_sub(4)).max(at);
    while at + 4 <= map_end && out.len() < MAX_PSM_ENTRIES {
        let stream_type = p[at];
        let stream_id = p[at + 1];
        let es_info = u16::from_be_bytes([p[at + 2], p[at + 3]]) as usize;
        at += 4 + es_info;
        if at > map_end {
            break;
        }
        out.push(PsmEntry {
            stream_type,
            stream_id,
        });
    }
    Some(())
}

/// What a PES header says about its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesHeader {
    /// 33-bit PTS, when `PTS_DTS_flags` is `10` or `11`.
    pub pts: Option<u64>,
    /// Header bytes after the 6-byte start code + length: 3 + `PES_header_data_length`.
    pub header_len: usize,
}

/// Reads the 33-bit timestamp of a 5-byte PTS/DTS field (13818-1 2.4.3.7). Marker bits and the
/// `0010`/`0011` prefix are not checked (some cameras get them wrong).
pub fn timestamp(b: &[u8]) -> Option<u64> {
    let b = b.get(..5)?;
    Some(
        ((b[0] as u64 >> 1) & 0x07) << 30
            | (b[1] as u64) << 22
            | (b[2] as u64 >> 1) << 15
            | (b[3] as u64) << 7
            | (b[4] as u64 >> 1),
    )
}

/// Parses an MPEG-2 PES header `h` = start code, length, the 3 fixed bytes and
/// `PES_header_data_length` bytes. `None`: not the MPEG-2 syntax (`10` marker bits).
pub fn parse_pes_header(h: &[u8]) -> Option<PesHeader> {
    if h.get(6)? & 0xC0 != 0x80 {
        return None;
    }
    let flags = *h.get(7)?;
    let hdl = *h.get(8)? as usize;
    let pts = if flags & 0x80 != 0 && hdl >= 5 {
        timestamp(h.get(9..14)?)
    } else {
        None
    };
    Some(PesHeader {
        pts,
        header_len: 3 + hdl,
    })
}

/// Writes a 5-byte PTS field with prefix `prefix` (`0b0010` PTS only, `0b0011` PTS of a PTS+DTS
/// pair, `0b0001` DTS); used by tests and the fuzzer's seed builder.
pub fn write_timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    [
        (prefix << 4) | (((ts >> 30) & 0x07) as u8) << 1 | 1,
        (ts >> 22) as u8,
        ((((ts >> 15) & 0x7f) as u8) << 1) | 1,
        (ts >> 7) as u8,
        (((ts & 0x7f) as u8) << 1) | 1,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_roundtrip() {
        for ts in [
            0u64,
            1,
            90_000,
            (1 << 33) - 1,
            0x1_2345_6789 & ((1 << 33) - 1),
        ] {
            assert_eq!(timestamp(&write_timestamp(2, ts)), Some(ts));
        }
    }

    #[test]
    fn hikvision_pack_header() {
        // SCR 0, mux rate, stuffing 6 (0xFE), as in the digest's Hikvision capture.
        let h = [0, 0, 1, 0xBA, 0x44, 0, 4, 0, 4, 1, 0x01, 0x89, 0xC3, 0xFE];
        assert_eq!(pack_header_len(&h), Some(PACK_MPEG2));
        assert_eq!(pack_stuffing(&h), 6);
        assert_eq!(pack_scr(&h), Some(0));
        assert_eq!(pack_header_len(&[0, 0, 1, 0xBA, 0x21]), Some(PACK_MPEG1));
        assert_eq!(pack_header_len(&[0, 0, 1, 0xBA, 0x00]), None);
    }

    #[test]
    fn psm_with_descriptors_and_bad_crc() {
        let mut p = vec![0, 0, 1, 0xBC, 0, 0, 0xE0, 0xFF, 0, 4, 0x40, 2, 0x48, 0x4B];
        let map: [u8; 14] = [0x1B, 0xE0, 0, 4, 0x42, 2, 0, 0, 0x90, 0xC0, 0, 0, 0, 0];
        p.extend_from_slice(&(map.len() as u16 - 2).to_be_bytes()[..]);
        p.extend_from_slice(&map[..12]);
        p.extend_from_slice(&[0, 0, 0, 0]); // CRC as Hikvision writes it
        let len = (p.len() - 6) as u16;
        p[4..6].copy_from_slice(&len.to_be_bytes());
        let mut out = Vec::new();
        parse_psm(&p, &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                PsmEntry {
                    stream_type: 0x1B,
                    stream_id: 0xE0
                },
                PsmEntry {
                    stream_type: 0x90,
                    stream_id: 0xC0
                }
            ]
        );
        // Truncated or lying lengths: no panic, fewer entries.
        for cut in 0..p.len() {
            let _ = parse_psm(&p[..cut], &mut out);
        }
        p[10 + 4] = 0xFF;
        let _ = parse_psm(&p, &mut out);
    }

    #[test]
    fn pes_header() {
        let mut h = vec![0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5];
        h.extend_from_slice(&write_timestamp(2, 123_456));
        assert_eq!(
            parse_pes_header(&h),
            Some(PesHeader {
                pts: Some(123_456),
                header_len: 8
            })
        );
        h[7] = 0;
        assert_eq!(parse_pes_header(&h).unwrap().pts, None);
        h[6] = 0x0F; // MPEG-1 syntax
        assert_eq!(parse_pes_header(&h), None);
    }
}

//! `time_zone`: an IANA zone (`Europe/Paris`) read from the host's
//! zoneinfo files (TZif, RFC 8536), as Fluent Bit reads them
//! (`tzif_load` in `src/flb_parser.c`): the transitions the file lists,
//! not its footer rule, so times past the last listed transition keep the
//! last offset (the "fat" files most systems ship list them to 2037).

use std::path::PathBuf;

/// A zone's offsets over time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NamedZone {
    /// When each offset starts, seconds since the epoch, ascending.
    transitions: Vec<i64>,
    /// The offset (seconds east of UTC) from each transition on.
    offsets_from: Vec<i32>,
    /// The offset before the first transition.
    initial: i32,
    /// Every offset the zone uses.
    offsets: Vec<i32>,
}

impl NamedZone {
    /// Reads zone `name` from `$TZDIR` or `/usr/share/zoneinfo`.
    pub(super) fn load(name: &str) -> Result<NamedZone, String> {
        let valid = !name.is_empty()
            && !name.starts_with('/')
            && name
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..")
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c));
        if !valid {
            return Err(format!("time_zone `{name}` is not an IANA zone name"));
        }
        let dir = std::env::var_os("TZDIR")
            .map_or_else(|| PathBuf::from("/usr/share/zoneinfo"), PathBuf::from);
        let path = dir.join(name);
        let bytes = std::fs::read(&path)
            .map_err(|e| format!("time_zone `{name}`: cannot read {}: {e}", path.display()))?;
        parse(&bytes).ok_or_else(|| {
            format!(
                "time_zone `{name}`: {} is not a zoneinfo (TZif) file",
                path.display()
            )
        })
    }

    /// The offset in force at `utc` (seconds since the epoch).
    pub(super) fn offset_at(&self, utc: i64) -> i32 {
        match self.transitions.partition_point(|&t| t <= utc) {
            0 => self.initial,
            n => self.offsets_from[n - 1],
        }
    }

    /// The offset of a local time (`local`: its fields read as UTC): the
    /// first of the zone's offsets that is in force at the instant it
    /// gives, as Fluent Bit picks it (so a time in a gap or an overlap
    /// gets one answer).
    pub(super) fn offset_of_local(&self, local: i64) -> i32 {
        self.offsets
            .iter()
            .copied()
            .find(|&offset| self.offset_at(local - i64::from(offset)) == offset)
            .unwrap_or_else(|| self.offset_at(local))
    }
}

/// A TZif file's data: its version 2+ block when it has one (64-bit
/// times), else its version 1 block.
fn parse(bytes: &[u8]) -> Option<NamedZone> {
    let first = Header::read(bytes)?;
    let (header, data, time_size) = if first.version >= b'2' {
        let second = bytes.get(44 + first.v1_size()..)?;
        (Header::read(second)?, second.get(44..)?, 8)
    } else {
        (first, bytes.get(44..)?, 4)
    };
    let mut at = 0;
    let mut take = |n: usize| -> Option<&[u8]> {
        let slice = data.get(at..at + n)?;
        at += n;
        Some(slice)
    };
    let times = take(header.timecnt * time_size)?;
    let transitions: Vec<i64> = times
        .chunks(time_size)
        .map(|c| match c.len() {
            8 => i64::from_be_bytes(c.try_into().unwrap_or_default()),
            _ => i64::from(i32::from_be_bytes(c.try_into().unwrap_or_default())),
        })
        .collect();
    let indexes = take(header.timecnt)?.to_vec();
    let types: Vec<i32> = take(header.typecnt * 6)?
        .chunks(6)
        .map(|t| i32::from_be_bytes([t[0], t[1], t[2], t[3]]))
        .collect();
    let offsets_from = indexes
        .iter()
        .map(|&i| types.get(usize::from(i)).copied())
        .collect::<Option<Vec<i32>>>()?;
    Some(NamedZone {
        transitions,
        offsets_from,
        initial: *types.first()?,
        offsets: types,
    })
}

/// The counts of a TZif header.
struct Header {
    version: u8,
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

impl Header {
    fn read(bytes: &[u8]) -> Option<Header> {
        if bytes.get(..4)? != b"TZif" {
            return None;
        }
        let count = |i: usize| -> Option<usize> {
            let b = bytes.get(20 + 4 * i..24 + 4 * i)?;
            usize::try_from(u32::from_be_bytes(b.try_into().ok()?)).ok()
        };
        Some(Header {
            version: *bytes.get(4)?,
            isutcnt: count(0)?,
            isstdcnt: count(1)?,
            leapcnt: count(2)?,
            timecnt: count(3)?,
            typecnt: count(4)?,
            charcnt: count(5)?,
        })
    }

    /// The size of the version 1 data block.
    fn v1_size(&self) -> usize {
        self.timecnt * 5
            + self.typecnt * 6
            + self.charcnt
            + self.leapcnt * 8
            + self.isstdcnt
            + self.isutcnt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zone file of one transition, from +01:00 to +02:00 at 1000.
    fn tzif(version: u8) -> Vec<u8> {
        let header = |version: u8| {
            let mut h = b"TZif".to_vec();
            h.push(version);
            h.extend([0; 15]);
            for count in [0u32, 0, 0, 1, 2, 0] {
                h.extend(count.to_be_bytes());
            }
            h
        };
        let block = |wide: bool| {
            let mut b = if wide {
                1000i64.to_be_bytes().to_vec()
            } else {
                1000i32.to_be_bytes().to_vec()
            };
            b.push(1);
            for offset in [3600i32, 7200] {
                b.extend(offset.to_be_bytes());
                b.extend([0, 0]);
            }
            b
        };
        let mut file = header(version);
        file.extend(block(false));
        if version >= b'2' {
            file.extend(header(version));
            file.extend(block(true));
        }
        file
    }

    #[test]
    fn offsets_follow_the_transitions() {
        for version in [0, b'2'] {
            let zone = parse(&tzif(version)).unwrap();
            assert_eq!(zone.offset_at(999), 3600);
            assert_eq!(zone.offset_at(1000), 7200);
            // Clocks go from local 4600 to 8200 at 1000.
            assert_eq!(zone.offset_of_local(3000), 3600);
            assert_eq!(zone.offset_of_local(4599), 3600);
            assert_eq!(zone.offset_of_local(9200), 7200);
            // In the gap neither offset fits: the one in force at the
            // local time read as UTC.
            assert_eq!(zone.offset_of_local(5000), 7200);
        }
        assert!(parse(b"nope").is_none());
    }

    #[test]
    fn the_hosts_zones_load_and_names_cannot_escape() {
        assert!(NamedZone::load("../etc/passwd").is_err());
        assert!(NamedZone::load("/etc/passwd").is_err());
        // Where the host has zoneinfo (Debian's tzdata), Paris in summer.
        if let Ok(paris) = NamedZone::load("Europe/Paris") {
            // 2024-07-01T00:00:00Z.
            assert_eq!(paris.offset_at(1_719_792_000), 7200);
            assert_eq!(paris.offset_at(1_704_067_200), 3600);
        }
    }
}

//! Sizes as people write them: `512MB`, `20GB`, `1.5TB`, `64GiB` or plain bytes. `KB`/`MB`/`GB`/
//! `TB` are decimal (powers of 1000), `KiB`/`MiB`/`GiB`/`TiB` binary (powers of 1024).

use crate::{CoreError, Result};

/// ext4 needs about this much for itself.
pub const MIN_SIZE: u64 = 2_000_000;

const UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KIB", 1 << 10),
    ("MIB", 1 << 20),
    ("GIB", 1 << 30),
    ("TIB", 1 << 40),
    ("K", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
];

pub fn parse_size(text: &str) -> Result<u64> {
    let bad = |reason: &str| {
        CoreError::InvalidInput {
        what: "size".into(),
        reason: format!(
            "\"{text}\" {reason}: write a number and a unit, e.g. 512MB, 20GB, 1.5TB (decimal: KB, MB, GB, TB) or 64GiB (binary: KiB, MiB, GiB, TiB), or plain bytes"
        ),
    }
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim().to_ascii_uppercase());
    if num.is_empty() || num.matches('.').count() > 1 {
        return Err(bad("has no number"));
    }
    let factor = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, f)| *f)
            .ok_or_else(|| bad("has an unknown unit"))?
    };
    let value: f64 = num.parse().map_err(|_| bad("has no number"))?;
    let bytes = value * factor as f64;
    if !bytes.is_finite() || bytes > 1e17 {
        return Err(bad("is too large"));
    }
    let bytes = bytes.round() as u64;
    if bytes < MIN_SIZE {
        return Err(bad(&format!(
            "is below the smallest volume, {}",
            human(MIN_SIZE)
        )));
    }
    Ok(bytes)
}

/// `20 MB (19.1 MiB)`: decimal, then binary.
pub fn human(bytes: u64) -> String {
    let dec = [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "KB")];
    let bin = [
        (1u64 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    let d = dec
        .iter()
        .find(|(f, _)| bytes as f64 >= *f)
        .map(|(f, u)| format!("{:.1} {u}", bytes as f64 / f))
        .unwrap_or(format!("{bytes} B"));
    let b = bin
        .iter()
        .find(|(f, _)| bytes >= *f)
        .map(|(f, u)| format!("{:.1} {u}", bytes as f64 / *f as f64))
        .unwrap_or(format!("{bytes} B"));
    format!("{d} ({b})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_binary_and_bytes() {
        assert_eq!(parse_size("512MB").unwrap(), 512_000_000);
        assert_eq!(parse_size("20GB").unwrap(), 20_000_000_000);
        assert_eq!(parse_size("1.5TB").unwrap(), 1_500_000_000_000);
        assert_eq!(parse_size("64GiB").unwrap(), 64 << 30);
        assert_eq!(parse_size(" 20 mb ").unwrap(), 20_000_000);
        assert_eq!(parse_size("10000000").unwrap(), 10_000_000);
        for bad in [
            "",
            "MB",
            "1.2.3GB",
            "20XB",
            "-5GB",
            "1KB",
            "1MB",
            "1e9",
            "9999999999TB",
        ] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(e.contains("512MB") && e.contains("GiB"), "{bad}: {e}");
        }
    }

    #[test]
    fn shows_both_units() {
        assert_eq!(human(20_000_000), "20.0 MB (19.1 MiB)");
        assert_eq!(human(1 << 30), "1.1 GB (1.0 GiB)");
    }
}

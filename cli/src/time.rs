//! Times on the command line: Unix milliseconds or `YYYY-MM-DDTHH:MM:SSZ`.

/// Parses Unix milliseconds or an RFC 3339 UTC time (`2026-11-22T10:00:00Z`).
pub fn parse(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || format!("not a time: {text:?} (use Unix milliseconds or YYYY-MM-DDTHH:MM:SSZ)");
    let t = text.strip_suffix('Z').ok_or_else(bad)?;
    let (date, clock) = t.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let c: Vec<i64> = clock
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let (&[y, m, day], &[hh, mm, ss]) = (d.as_slice(), c.as_slice()) else {
        return Err(bad());
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return Err(bad());
    }
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_both_forms() {
        assert_eq!(super::parse("1795000000000"), Ok(1_795_000_000_000));
        assert_eq!(super::parse("2026-11-18T11:06:40Z"), Ok(1_795_000_000_000));
        assert_eq!(super::parse("2000-02-29T00:00:00Z"), Ok(951_782_400_000));
        assert!(super::parse("yesterday").is_err());
        assert!(super::parse("2026-13-01T00:00:00Z").is_err());
    }
}

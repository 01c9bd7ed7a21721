//! Docker-style output: aligned tables, human sizes and durations.

/// Parses `512`, `64k`, `64m`, `1g`, `1.5g` (binary units, as docker's RAMInBytes).
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|x| !x.is_empty() && x.ends_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or(&t)
        .to_string();
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some(c) if c.is_ascii_digit() => (&t[..], 1),
        _ => return Err(format!("invalid size: '{s}'")),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid size: '{s}'"))?;
    if n < 0.0 || !n.is_finite() {
        return Err(format!("invalid size: '{s}'"));
    }
    Ok((n * mult as f64) as i64)
}

/// Docker's HumanSizeWithPrecision(size, 3): decimal units ("4.26MB").
pub fn human_size(size: f64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut s = size;
    let mut i = 0;
    while s >= 1000.0 && i < units.len() - 1 {
        s /= 1000.0;
        i += 1;
    }
    let txt = format!("{s:.3}");
    // %.3g: three significant digits.
    let digits = if s >= 100.0 {
        0
    } else if s >= 10.0 {
        1
    } else {
        2
    };
    let mut txt2 = format!("{s:.digits$}");
    if txt2.contains('.') {
        txt2 = txt2.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    let _ = txt;
    format!("{txt2}{}", units[i])
}

/// Docker's human duration for a number of seconds.
pub fn human_duration(secs: i64) -> String {
    arca_model::human_duration(std::time::Duration::from_secs(secs.max(0) as u64))
}

pub fn ago(unix: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    format!("{} ago", human_duration(now - unix))
}

/// Prints rows as a table with docker's tabwriter padding (3 spaces).
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// docker ps's COMMAND column: quoted, truncated to 20 characters with an ellipsis.
pub fn command_cell(cmd: &str) -> String {
    let chars: Vec<char> = cmd.chars().collect();
    let shown: String = if chars.len() > 20 {
        chars[..19].iter().collect::<String>() + "…"
    } else {
        cmd.to_string()
    };
    format!("\"{shown}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_bytes("512"), Ok(512));
        assert_eq!(parse_bytes("100MB"), Ok(100 << 20));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-5m").is_err());
    }

    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(human_size(4_261_000.0), "4.26MB");
        assert_eq!(human_size(842.0), "842B");
        assert_eq!(human_size(1_500_000_000.0), "1.5GB");
    }

    #[test]
    fn long_commands_are_truncated() {
        assert_eq!(command_cell("sleep 60"), "\"sleep 60\"");
        assert_eq!(
            command_cell("abcdefghijklmnopqrstuvwxyz").chars().count(),
            22
        );
    }
}

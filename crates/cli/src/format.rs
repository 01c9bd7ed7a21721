//! Docker-style output: aligned tables, human sizes and durations.

/// Go's `%.{prec}g`: `prec` significant digits, trailing zeros dropped, exponent form for
/// very large or small values.
pub fn go_g(v: f64, prec: usize) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let exp = v.abs().log10().floor() as i32;
    // Rounding to `prec` digits may carry into the next power of ten (999.7 -> 1e+03).
    let rounded: f64 = format!("{:.*e}", prec.saturating_sub(1), v)
        .parse()
        .unwrap_or(v);
    let exp = if rounded.abs() >= 10f64.powi(exp + 1) {
        exp + 1
    } else {
        exp
    };
    if exp < -4 || exp >= prec as i32 {
        let m = format!("{:.*e}", prec.saturating_sub(1), v);
        let (mant, e) = m.split_once('e').unwrap_or((&m, "0"));
        let mant = trim_zeros(mant);
        let e: i32 = e.parse().unwrap_or(0);
        let sign = if e < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", e.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{v:.decimals$}")).to_owned()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

fn custom_size(size: f64, base: f64, prec: usize, units: &[&str]) -> String {
    let mut s = size;
    let mut i = 0;
    while s >= base && i < units.len() - 1 {
        s /= base;
        i += 1;
    }
    format!("{}{}", go_g(s, prec), units[i])
}

/// Docker's HumanSizeWithPrecision(size, 3): decimal units ("4.26MB").
pub fn human_size(size: f64) -> String {
    custom_size(
        size,
        1000.0,
        3,
        &["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"],
    )
}

/// Docker's HumanSize: decimal units, 4 significant digits ("2.155MB"), as in progress.
pub fn human_size_4(size: f64) -> String {
    custom_size(
        size,
        1000.0,
        4,
        &["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"],
    )
}

/// Docker's BytesSize: binary units, 4 significant digits ("1.5MiB", "7.668GiB").
pub fn bytes_size(size: f64) -> String {
    custom_size(
        size,
        1024.0,
        4,
        &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"],
    )
}

/// Docker's human duration for a number of seconds.
pub fn human_duration(secs: i64) -> String {
    arca_model::human_duration(std::time::Duration::from_secs(secs.max(0) as u64))
}

pub fn ago(unix: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    format!("{} ago", human_duration(now - unix))
}

/// Prints rows as a table with the docker formatter's tabwriter (minimum width 10,
/// padding 3).
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", render_table(header, rows, 10));
}

/// Renders a table as Go's tabwriter does with padding 3 and the given minimum cell width;
/// the last column is not padded.
pub fn render_table(header: &[&str], rows: &[Vec<String>], min_width: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(c);
            if i + 1 < cells.len() {
                let w = (widths[i] + 3).max(min_width);
                s.push_str(&" ".repeat(w - c.chars().count()));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
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

/// docker's `prompt.Confirm`: the message, ` [y/N] `, then one line from stdin; only `y`
/// (any case) confirms, end of input declines.
pub fn confirm(message: &str) -> anyhow::Result<bool> {
    print!("{message} [y/N] ");
    std::io::Write::flush(&mut std::io::stdout())?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim().eq_ignore_ascii_case("y"))
}

/// A 64-hex ID as docker shows it: the algorithm dropped, 12 characters.
pub fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map_or(id, |(_, rest)| rest);
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(human_size(4_261_000.0), "4.26MB");
        assert_eq!(human_size(842.0), "842B");
        assert_eq!(human_size(1_500_000_000.0), "1.5GB");
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(999_700.0), "1e+03kB");
        assert_eq!(bytes_size(1_572_864.0), "1.5MiB");
        assert_eq!(bytes_size(8_233_418_752.0), "7.668GiB");
        assert_eq!(bytes_size(1023.0), "1023B");
        assert_eq!(bytes_size(0.0), "0B");
    }

    #[test]
    fn tables_pad_like_go_tabwriter() {
        let t = render_table(
            &["CONTAINER ID", "NAME", "CPU %"],
            &[vec!["abc".into(), "x".into(), "0.00%".into()]],
            10,
        );
        assert_eq!(
            t,
            "CONTAINER ID   NAME      CPU %\nabc            x         0.00%\n"
        );
        let t = render_table(&["UID", "PID"], &[vec!["root".into(), "1".into()]], 20);
        assert_eq!(t, "UID                 PID\nroot                1\n");
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

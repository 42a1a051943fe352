//! How durations, sizes and missing values are written in the report, the terminal and Markdown.

/// What a missing measurement reads as: never a zero.
pub const MISSING: &str = "n/a";

/// Milliseconds below one second, seconds with one decimal above.
pub fn duration(ms: f64) -> String {
    if ms.abs() < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

pub fn opt_duration(ms: Option<f64>) -> String {
    ms.map_or_else(|| MISSING.to_string(), duration)
}

/// SI units (1 MB = 1,000,000 bytes), as registries and `docker images` count.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n;
    let mut unit = 0;
    while value.abs() >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn opt_bytes(n: Option<f64>) -> String {
    n.map_or_else(|| MISSING.to_string(), bytes)
}

/// A signed relative change, `0.123` -> `+12.3%`.
pub fn change(ratio: f64) -> String {
    format!("{:+.1}%", ratio * 100.0)
}

/// Escapes text for HTML element content and attribute values.
pub fn html(text: impl AsRef<str>) -> String {
    let text = text.as_ref();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How `a` compares with `b` as a ratio: "2.3× slower", "4.1× faster", "1.02× slower" (two decimals below 1.05×): how a
/// reader compares two strategies. A strategy against itself over time is a percentage (`change`).
pub fn ratio(a: f64, b: f64) -> String {
    if a <= 0.0 || b <= 0.0 {
        return MISSING.to_string();
    }
    let r = a / b;
    // Two decimals where one would read 1.0×: whether the gap is noise is the verdict's to say.
    let shown = |x: f64| if x < 1.05 { format!("{x:.2}") } else { format!("{x:.1}") };
    if r >= 1.0 {
        format!("{}× slower", shown(r))
    } else {
        format!("{}× faster", shown(1.0 / r))
    }
}

/// Names joined with `sep` (strategies, pipeline runs).
pub fn join<T: AsRef<str>>(items: &[T], sep: &str) -> String {
    items.iter().map(|i| i.as_ref()).collect::<Vec<_>>().join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_strategies_compare_as_a_ratio() {
        assert_eq!(ratio(40.0, 92.0), "2.3× faster");
        assert_eq!(ratio(92.0, 40.0), "2.3× slower");
        assert_eq!(ratio(40.8, 40.0), "1.02× slower");
        assert_eq!(ratio(40.0, 40.0), "1.00× slower");
        assert_eq!(ratio(0.0, 40.0), MISSING);
    }

    #[test]
    fn units_are_readable() {
        assert_eq!(duration(850.0), "850 ms");
        assert_eq!(duration(12_345.0), "12.3 s");
        assert_eq!(opt_duration(None), "n/a");
        assert_eq!(bytes(999.0), "999 B");
        assert_eq!(bytes(1_500_000.0), "1.5 MB");
        assert_eq!(change(-0.5), "-50.0%");
        assert_eq!(html("<a href=\"x\">&"), "&lt;a href=&quot;x&quot;&gt;&amp;");
    }
}


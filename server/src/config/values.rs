//! Scalar value syntax as etcd's Go flag package and standard library accept it: integers in Go
//! literal syntax (`strconv.ParseUint(s, 0, 64)`: `0x10`, `0o17`, `017`, `1_000`), booleans
//! (`strconv.ParseBool`: `1`, `t`, `TRUE`, `False`, ...), Go durations (`time.ParseDuration`:
//! `1h30m`, `1.5h`, `300ms`), and etcd's auto-compaction retention rule.
//!
//! Pure functions; error texts are the ones etcd prints (`parse error`, `value out of range`,
//! `time: invalid duration "x"`, ...), because operators and scripts recognise them.

use std::time::Duration;

/// The Go flag package's error for unparsable numbers.
pub(crate) const PARSE_ERROR: &str = "parse error";
/// The Go flag package's error for numbers outside the flag's type.
pub(crate) const RANGE_ERROR: &str = "value out of range";

/// `strconv.ParseUint(s, 0, 64)` with the flag package's error texts.
pub(crate) fn parse_go_uint(input: &str) -> Result<u64, &'static str> {
    if input.is_empty() {
        return Err(PARSE_ERROR);
    }
    let (radix, digits) = split_radix(input);
    let mut value: u64 = 0;
    let mut saw_underscore = false;
    for c in digits.chars() {
        if c == '_' {
            saw_underscore = true;
            continue;
        }
        let digit = c.to_digit(radix).ok_or(PARSE_ERROR)?;
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or(RANGE_ERROR)?;
    }
    if saw_underscore && !underscores_ok(input) {
        return Err(PARSE_ERROR);
    }
    Ok(value)
}

/// `strconv.ParseBool` with the flag package's error text: exactly `1 t T TRUE true True` and
/// `0 f F FALSE false False`; anything else (`yes`, `tRuE`, the empty string) is refused.
pub(crate) fn parse_go_bool(input: &str) -> Result<bool, &'static str> {
    match input {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(PARSE_ERROR),
    }
}

/// `strconv.ParseInt(s, 0, 64)` with the flag package's error texts.
pub(crate) fn parse_go_int(input: &str) -> Result<i64, &'static str> {
    let (negative, magnitude) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    let unsigned = parse_go_uint(magnitude)?;
    if negative {
        0i64.checked_sub_unsigned(unsigned).ok_or(RANGE_ERROR)
    } else {
        i64::try_from(unsigned).map_err(|_| RANGE_ERROR)
    }
}

/// Go's base-0 prefix rule: `0b`, `0o`, `0x` (need at least one more character), a bare
/// leading `0` means octal, anything else decimal.
fn split_radix(input: &str) -> (u32, &str) {
    let bytes = input.as_bytes();
    if bytes[0] != b'0' {
        return (10, input);
    }
    if bytes.len() >= 3 {
        match bytes[1].to_ascii_lowercase() {
            b'b' => return (2, &input[2..]),
            b'o' => return (8, &input[2..]),
            b'x' => return (16, &input[2..]),
            _ => {}
        }
    }
    (8, &input[1..])
}

/// Go's `underscoreOK`: each `_` sits between digits (a base prefix counts as a digit).
fn underscores_ok(input: &str) -> bool {
    let mut rest = input.strip_prefix(['+', '-']).unwrap_or(input).as_bytes();
    // What the previous character was: '^' start, '0' digit, '_' underscore, '!' other.
    let mut saw = b'^';
    let mut hex = false;
    if rest.len() >= 2
        && rest[0] == b'0'
        && matches!(rest[1].to_ascii_lowercase(), b'b' | b'o' | b'x')
    {
        hex = rest[1].eq_ignore_ascii_case(&b'x');
        rest = &rest[2..];
        saw = b'0';
    }
    for &c in rest {
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
    }
    saw != b'_'
}

/// Go's `time.ParseDuration`, returning signed nanoseconds.
pub(crate) fn parse_go_duration(input: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {input:?}");
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_digits, after_int) = rest.split_at(int_len);
        let (frac_digits, after_number) = match after_int.strip_prefix('.') {
            Some(after_dot) => {
                let frac_len = after_dot
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(after_dot.len());
                (Some(&after_dot[..frac_len]), &after_dot[frac_len..])
            }
            None => (None, after_int),
        };
        if int_digits.is_empty() && !matches!(frac_digits, Some(f) if !f.is_empty()) {
            return Err(invalid());
        }
        let unit_len = after_number
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after_number.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {input:?}"));
        }
        let (unit_text, after_unit) = after_number.split_at(unit_len);
        let unit_ns: u128 = match unit_text {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {unit_text:?} in duration {input:?}"
                ))
            }
        };
        let whole: u128 = if int_digits.is_empty() {
            0
        } else {
            int_digits.parse().map_err(|_| invalid())?
        };
        let mut part = whole.checked_mul(unit_ns).ok_or_else(invalid)?;
        if let Some(frac) = frac_digits.filter(|f| !f.is_empty()) {
            // Go keeps fraction digits until they would overflow, then ignores the rest.
            let kept = &frac[..frac.len().min(18)];
            let numerator: u128 = kept.parse().map_err(|_| invalid())?;
            part += numerator * unit_ns / 10u128.pow(kept.len() as u32);
        }
        total += part;
        if total > 1u128 << 63 {
            return Err(invalid());
        }
        rest = after_unit;
    }
    if negative {
        Ok((total as i128).wrapping_neg() as i64)
    } else {
        i64::try_from(total).map_err(|_| invalid())
    }
}

/// Auto compaction as configured by `--auto-compaction-mode` and `--auto-compaction-retention`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    /// No automatic compaction (retention `0`, or etcd's empty-mode quirk; see
    /// [`parse_retention`]).
    Disabled,
    /// Periodic mode: keep this much history.
    Periodic(Duration),
    /// Revision mode: keep this many revisions.
    Revision(u64),
}

/// etcd's `parseCompactionRetention` plus the compactor's mode check. A bare non-negative
/// integer means hours in periodic mode and revisions in revision mode; anything else must be a
/// Go duration. Returns the setting and, where etcd's behaviour is surprising, a warning.
///
/// Faithful quirks: with an empty mode (only possible from a config file without
/// `auto-compaction-mode`) a bare number disables compaction and a duration is an error; in
/// revision mode a duration counts its nanoseconds as revisions.
pub(crate) fn parse_retention(
    mode: &str,
    retention: &str,
) -> Result<(AutoCompaction, Option<String>), String> {
    if let Some(count) = parse_atoi(retention).filter(|&n| n >= 0) {
        let count = count as u64;
        let setting = match (mode, count) {
            (_, 0) => AutoCompaction::Disabled,
            ("revision", _) => AutoCompaction::Revision(count),
            ("periodic", _) => {
                let secs = count.checked_mul(3600).ok_or_else(|| {
                    format!(
                        "error parsing CompactionRetention: {retention:?} hours is out of range"
                    )
                })?;
                AutoCompaction::Periodic(Duration::from_secs(secs))
            }
            _ => {
                let warning = format!(
                    "auto-compaction-retention {retention:?} is ignored because auto-compaction-mode \
                     is empty (etcd 3.4 behaves the same); set auto-compaction-mode: periodic"
                );
                return Ok((AutoCompaction::Disabled, Some(warning)));
            }
        };
        return Ok((setting, None));
    }
    let nanos = parse_go_duration(retention)
        .map_err(|err| format!("error parsing CompactionRetention: {err}"))?;
    if nanos < 0 {
        return Err(format!(
            "error parsing CompactionRetention: negative retention {retention:?}"
        ));
    }
    let nanos = nanos as u64;
    match mode {
        _ if nanos == 0 => Ok((AutoCompaction::Disabled, None)),
        "periodic" => Ok((AutoCompaction::Periodic(Duration::from_nanos(nanos)), None)),
        "revision" => {
            let warning = format!(
                "auto-compaction-retention {retention:?} in revision mode keeps {nanos} revisions \
                 (etcd reads a duration's nanoseconds as a revision count)"
            );
            Ok((AutoCompaction::Revision(nanos), Some(warning)))
        }
        other => Err(format!("unsupported compaction mode {other}")),
    }
}

/// Go's `strconv.Atoi`: optional sign, decimal digits only.
fn parse_atoi(input: &str) -> Option<i64> {
    let digits = input.strip_prefix(['+', '-']).unwrap_or(input);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    input.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_unsigned_integers() {
        // Proves unsigned flags accept Go's integer literal forms and reject the rest with Go's words.
        for (input, want) in [
            ("0", 0),
            ("42", 42),
            ("0x1F", 31),
            ("0o17", 15),
            ("017", 15),
            ("0b101", 5),
            ("1_000", 1000),
            ("0x_ff", 255),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_go_uint(input), Ok(want), "{input}");
        }
        for (input, want) in [
            ("", PARSE_ERROR),
            ("-1", PARSE_ERROR),
            ("+1", PARSE_ERROR),
            ("abc", PARSE_ERROR),
            ("09", PARSE_ERROR),
            ("1__0", PARSE_ERROR),
            ("_1", PARSE_ERROR),
            ("1_", PARSE_ERROR),
            ("1.5", PARSE_ERROR),
            ("18446744073709551616", RANGE_ERROR),
        ] {
            assert_eq!(parse_go_uint(input), Err(want), "{input}");
        }
    }

    #[test]
    fn go_signed_integers() {
        // Proves signed flags accept a sign and report overflow as Go does.
        assert_eq!(parse_go_int("-1"), Ok(-1));
        assert_eq!(parse_go_int("+7"), Ok(7));
        assert_eq!(parse_go_int("-0x10"), Ok(-16));
        assert_eq!(parse_go_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_go_int("9223372036854775808"), Err(RANGE_ERROR));
        assert_eq!(parse_go_int("--1"), Err(PARSE_ERROR));
        assert_eq!(parse_go_int("-"), Err(PARSE_ERROR));
    }

    #[test]
    fn go_booleans() {
        // Proves booleans accept exactly strconv.ParseBool's spellings and nothing looser.
        for input in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(input), Ok(true), "{input}");
        }
        for input in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(input), Ok(false), "{input}");
        }
        for input in ["", "yes", "no", "on", "tRUE", "2", " true", "maybe"] {
            assert_eq!(parse_go_bool(input), Err(PARSE_ERROR), "{input:?}");
        }
    }

    #[test]
    fn go_durations() {
        // Proves Go's duration grammar: compound units, fractions, signs and its error texts.
        let ns = |s| parse_go_duration(s).unwrap();
        assert_eq!(ns("0"), 0);
        assert_eq!(ns("5m"), 300_000_000_000);
        assert_eq!(ns("1h30m"), 5_400_000_000_000);
        assert_eq!(ns("1.5h"), 5_400_000_000_000);
        assert_eq!(ns(".5s"), 500_000_000);
        assert_eq!(ns("300ms"), 300_000_000);
        assert_eq!(ns("2us"), 2_000);
        assert_eq!(ns("2µs"), 2_000);
        assert_eq!(ns("-1s"), -1_000_000_000);
        assert_eq!(
            parse_go_duration("foo").unwrap_err(),
            r#"time: invalid duration "foo""#
        );
        assert_eq!(
            parse_go_duration("").unwrap_err(),
            r#"time: invalid duration """#
        );
        assert_eq!(
            parse_go_duration(".s").unwrap_err(),
            r#"time: invalid duration ".s""#
        );
        assert_eq!(
            parse_go_duration("-1").unwrap_err(),
            r#"time: missing unit in duration "-1""#
        );
        assert_eq!(
            parse_go_duration("5x").unwrap_err(),
            r#"time: unknown unit "x" in duration "5x""#
        );
        assert_eq!(
            parse_go_duration("9999999999h").unwrap_err(),
            r#"time: invalid duration "9999999999h""#
        );
    }

    #[test]
    fn retention_rules() {
        // Proves etcd's retention rule: bare numbers are hours (periodic) or revisions, else durations.
        let parse = |mode, value| parse_retention(mode, value).map(|(setting, _)| setting);
        assert_eq!(parse("periodic", "0"), Ok(AutoCompaction::Disabled));
        assert_eq!(
            parse("periodic", "1"),
            Ok(AutoCompaction::Periodic(Duration::from_secs(3600)))
        );
        assert_eq!(
            parse("periodic", "+2"),
            Ok(AutoCompaction::Periodic(Duration::from_secs(7200)))
        );
        assert_eq!(
            parse("periodic", "5m"),
            Ok(AutoCompaction::Periodic(Duration::from_secs(300)))
        );
        assert_eq!(
            parse("periodic", "1h30m"),
            Ok(AutoCompaction::Periodic(Duration::from_secs(5400)))
        );
        assert_eq!(parse("periodic", "0s"), Ok(AutoCompaction::Disabled));
        assert_eq!(
            parse("revision", "1000"),
            Ok(AutoCompaction::Revision(1000))
        );
        assert_eq!(parse("revision", "0"), Ok(AutoCompaction::Disabled));
        assert_eq!(parse("", "0"), Ok(AutoCompaction::Disabled));
        assert_eq!(parse("", "3"), Ok(AutoCompaction::Disabled));
        assert!(
            parse_retention("", "3").unwrap().1.is_some(),
            "the empty-mode quirk is warned about"
        );
        let (revisions, warning) = parse_retention("revision", "1s").unwrap();
        assert_eq!(revisions, AutoCompaction::Revision(1_000_000_000));
        assert!(warning.is_some());
        assert_eq!(
            parse("", "1h"),
            Err("unsupported compaction mode ".to_string())
        );
        assert_eq!(
            parse("periodic", "foo"),
            Err(r#"error parsing CompactionRetention: time: invalid duration "foo""#.to_string())
        );
        assert_eq!(
            parse("periodic", "-1"),
            Err(
                r#"error parsing CompactionRetention: time: missing unit in duration "-1""#
                    .to_string()
            )
        );
        assert_eq!(
            parse("periodic", "-1h"),
            Err(r#"error parsing CompactionRetention: negative retention "-1h""#.to_string())
        );
    }
}

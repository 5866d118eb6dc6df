//! How keys, values and bucket names are shown and parsed on the command line.
//!
//! Data-file keys are arbitrary bytes (etcd's revision keys are binary), so output picks a
//! representation per [`ByteFormat`], and names given as arguments can be parsed as text or
//! hex per [`ParseFormat`]. Pure functions only; no I/O beyond writing to a given writer.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

/// How bytes are printed (`--format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ByteFormat {
    /// Text when the bytes are printable UTF-8, lowercase hex otherwise
    #[default]
    Auto,
    /// Lowercase hex, always
    Hex,
    /// Printable ASCII as is, every other byte as \xNN and backslash as \\
    Ascii,
    /// The raw bytes, unchanged
    Bytes,
}

/// How BUCKET and KEY arguments are read (`--parse-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ParseFormat {
    /// The argument's UTF-8 bytes
    #[default]
    Text,
    /// Hex digits, two per byte (e.g. 00000000000000025f0000000000000000 is revision key 2_0)
    Hex,
}

/// True when `bytes` are valid UTF-8 without control characters, so printing them as text is
/// unambiguous and safe for a terminal.
pub fn is_printable(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|text| !text.chars().any(char::is_control))
}

pub fn to_hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

pub fn to_ascii(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for &byte in bytes {
        match byte {
            b'\\' => text.push_str("\\\\"),
            0x20..=0x7e => text.push(char::from(byte)),
            _ => {
                let _ = write!(text, "\\x{byte:02x}");
            }
        }
    }
    text
}

/// `auto`: the text itself when printable, hex otherwise.
pub fn to_auto(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) if is_printable(bytes) => Cow::Borrowed(text),
        _ => Cow::Owned(to_hex(bytes)),
    }
}

/// The printed form of `bytes` in `format`. `Bytes` returns them unchanged.
pub fn render(bytes: &[u8], format: ByteFormat) -> Cow<'_, [u8]> {
    match format {
        ByteFormat::Auto => match to_auto(bytes) {
            Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
        },
        ByteFormat::Hex => Cow::Owned(to_hex(bytes).into_bytes()),
        ByteFormat::Ascii => Cow::Owned(to_ascii(bytes).into_bytes()),
        ByteFormat::Bytes => Cow::Borrowed(bytes),
    }
}

/// The printed form of `bytes` as a `String`; `Bytes` falls back to `Ascii` since a string
/// cannot hold arbitrary bytes (used inside tables and messages).
pub fn render_text(bytes: &[u8], format: ByteFormat) -> String {
    match format {
        ByteFormat::Auto => to_auto(bytes).into_owned(),
        ByteFormat::Hex => to_hex(bytes),
        ByteFormat::Ascii | ByteFormat::Bytes => to_ascii(bytes),
    }
}

/// Writes `bytes` in `format` followed by a newline.
pub fn write_line(out: &mut dyn Write, bytes: &[u8], format: ByteFormat) -> io::Result<()> {
    out.write_all(&render(bytes, format))?;
    out.write_all(b"\n")
}

/// Reads a command-line argument as bytes.
pub fn parse_arg(arg: &str, format: ParseFormat) -> Result<Vec<u8>, String> {
    match format {
        ParseFormat::Text => Ok(arg.as_bytes().to_vec()),
        ParseFormat::Hex => from_hex(arg),
    }
}

fn from_hex(hex: &str) -> Result<Vec<u8>, String> {
    let pairs = hex.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return Err(format!("{hex:?} is not hex: odd number of digits"));
    }
    pairs
        .map(|pair| {
            let digits = std::str::from_utf8(pair).map_err(|_| format!("{hex:?} is not hex"))?;
            u8::from_str_radix(digits, 16).map_err(|_| format!("{hex:?} is not hex"))
        })
        .collect()
}

/// A bucket path for messages: each name in `auto` form, joined by '/'.
pub fn display_path(names: &[Vec<u8>]) -> String {
    names
        .iter()
        .map(|name| to_auto(name).into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    // auto prints printable UTF-8 as text and anything else (binary, control chars) as hex.
    #[test]
    fn auto_picks_text_or_hex() {
        assert_eq!(to_auto(b"foo bar"), "foo bar");
        assert_eq!(to_auto("héllo".as_bytes()), "héllo");
        assert_eq!(to_auto(b"a\nb"), "610a62");
        assert_eq!(to_auto(&[0, 1, 0xff]), "0001ff");
        assert_eq!(to_auto(b""), "");
    }

    // ascii escapes every non-printable byte and the backslash itself, so it is reversible.
    #[test]
    fn ascii_escapes() {
        assert_eq!(to_ascii(b"a\\b\x00\xff~"), "a\\\\b\\x00\\xff~");
    }

    // bytes is the identity and hex is lowercase two digits per byte.
    #[test]
    fn render_formats() {
        let raw = [0x00, 0x41, 0xfe];
        assert_eq!(render(&raw, ByteFormat::Bytes).as_ref(), &raw);
        assert_eq!(render(&raw, ByteFormat::Hex).as_ref(), b"0041fe");
        assert_eq!(render_text(&raw, ByteFormat::Bytes), "\\x00A\\xfe");
    }

    // Hex arguments parse in either case and bad input is an error, not a panic.
    #[test]
    fn parse_hex_args() {
        assert_eq!(
            parse_arg("00aB", ParseFormat::Hex).unwrap(),
            vec![0x00, 0xab]
        );
        assert_eq!(parse_arg("", ParseFormat::Hex).unwrap(), Vec::<u8>::new());
        assert!(parse_arg("abc", ParseFormat::Hex).is_err());
        assert!(parse_arg("zz", ParseFormat::Hex).is_err());
        assert!(parse_arg("é0", ParseFormat::Hex).is_err());
        assert_eq!(
            parse_arg("key", ParseFormat::Text).unwrap(),
            b"key".to_vec()
        );
    }
}

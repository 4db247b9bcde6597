//! Python's `str()` and `repr()` of JSON-shaped values, byte for byte.
//!
//! The legacy body hash runs every hash field through Python's `str()`, so a
//! Rust peer must render `41`, `True`, `None`, `1e-05`, `[1, 2]` and
//! `{'a': 'it\'s'}` exactly as CPython does. Values arrive as the
//! [`serde_json::Value`] of the synapse (what pydantic's `model_dump()` would
//! hold), with object keys in field order.
//!
//! String escaping follows CPython's `unicode_repr`: the quote is `'` unless the
//! text holds a `'` and no `"`; `\\`, the quote, `\t`, `\n` and `\r` are escaped;
//! other characters are kept when printable and otherwise written as `\xNN`,
//! `\uNNNN` or `\UNNNNNNNN`. "Printable" is Unicode's definition (everything
//! but the categories Cc, Cf, Cs, Co, Cn, Zl, Zp and Zs other than space),
//! taken from Unicode 16 tables; a Python built on an older Unicode database
//! disagrees only on code points that were unassigned in its version.

use serde_json::Value;
use std::fmt::Write as _;
use unicode_general_category::{GeneralCategory, get_general_category};

/// Python's `str(v)`: strings are written raw, everything else as `repr`.
///
/// ```
/// use akihabara_core::protocol::pystr::py_str;
/// use serde_json::json;
/// assert_eq!(py_str(&json!("hi")), "hi");
/// assert_eq!(py_str(&json!(41)), "41");
/// assert_eq!(py_str(&json!(true)), "True");
/// assert_eq!(py_str(&json!(null)), "None");
/// assert_eq!(py_str(&json!(1e-5)), "1e-05");
/// assert_eq!(py_str(&json!([1, "a"])), "[1, 'a']");
/// assert_eq!(py_str(&json!({"a": 1.0})), "{'a': 1.0}");
/// ```
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr(v)`.
pub fn py_repr(v: &Value) -> String {
    let mut out = String::new();
    write_repr(v, &mut out);
    out
}

fn write_repr(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(f) = n.as_f64() {
                out.push_str(&py_float_repr(f));
            }
        }
        Value::String(s) => write_str_repr(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str_repr(k, out);
                out.push_str(": ");
                write_repr(item, out);
            }
            out.push('}');
        }
    }
}

/// CPython's `repr(float)`: the shortest digits that round-trip, in fixed
/// notation when the decimal exponent is in `-4 < e <= 16`, else `1e+16` style.
///
/// ```
/// use akihabara_core::protocol::pystr::py_float_repr;
/// assert_eq!(py_float_repr(12.0), "12.0");
/// assert_eq!(py_float_repr(0.1), "0.1");
/// assert_eq!(py_float_repr(1e16), "1e+16");
/// assert_eq!(py_float_repr(1234567890123456.0), "1234567890123456.0");
/// assert_eq!(py_float_repr(0.0001), "0.0001");
/// assert_eq!(py_float_repr(-2.5e-7), "-2.5e-07");
/// ```
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0.0");
    }
    // Rust's `{:e}` prints the shortest round-trip digits, like CPython's dtoa.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let decpt = exp + 1;
    let n = digits.len() as i32;
    let body = if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            format!("0.{}{digits}", "0".repeat((-decpt) as usize))
        } else if decpt >= n {
            format!("{digits}{}.0", "0".repeat((decpt - n) as usize))
        } else {
            let (a, b) = digits.split_at(decpt as usize);
            format!("{a}.{b}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{first}{frac}e{esign}{:02}", exp.unsigned_abs())
    };
    format!("{sign}{body}")
}

fn write_str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x7f => out.push(c),
            c if is_printable(c) => out.push(c),
            c => {
                let cp = c as u32;
                let _ = if cp <= 0xff {
                    write!(out, "\\x{cp:02x}")
                } else if cp <= 0xffff {
                    write!(out, "\\u{cp:04x}")
                } else {
                    write!(out, "\\U{cp:08x}")
                };
            }
        }
    }
    out.push(quote);
}

/// `str.isprintable()` for one character.
fn is_printable(c: char) -> bool {
    use GeneralCategory as G;
    if c == ' ' {
        return true;
    }
    !matches!(
        get_general_category(c),
        G::Control
            | G::Format
            | G::Surrogate
            | G::PrivateUse
            | G::Unassigned
            | G::LineSeparator
            | G::ParagraphSeparator
            | G::SpaceSeparator
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_pick_quotes_and_escape_like_cpython() {
        assert_eq!(py_repr(&json!("a")), "'a'");
        assert_eq!(py_repr(&json!("it's")), "\"it's\"");
        assert_eq!(py_repr(&json!("it's \"x\"")), "'it\\'s \"x\"'");
        assert_eq!(py_repr(&json!("a\\b\n\t\r")), "'a\\\\b\\n\\t\\r'");
        assert_eq!(py_repr(&json!("\u{0}\u{7f}")), "'\\x00\\x7f'");
        assert_eq!(py_repr(&json!("é日本🙂")), "'é日本🙂'");
        assert_eq!(
            py_repr(&json!("\u{a0}\u{ad}\u{2028}\u{e000}")),
            "'\\xa0\\xad\\u2028\\ue000'"
        );
        assert_eq!(py_repr(&json!("\u{f0000}")), "'\\U000f0000'");
    }

    #[test]
    fn containers_nest_with_python_spacing() {
        let v = json!({"a": [1, 2.5, null, true], "b": {"c": "d"}, "e": []});
        assert_eq!(
            py_str(&v),
            "{'a': [1, 2.5, None, True], 'b': {'c': 'd'}, 'e': []}"
        );
        assert_eq!(py_str(&json!({})), "{}");
        assert_eq!(py_str(&json!(-7)), "-7");
        assert_eq!(py_str(&json!(u64::MAX)), "18446744073709551615");
    }

    #[test]
    fn floats_switch_notation_where_cpython_does() {
        for (f, want) in [
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.5, "0.5"),
            (100.0, "100.0"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e16, "1e+16"),
            (1.5e17, "1.5e+17"),
            (1e-4, "0.0001"),
            (1.25e-4, "0.000125"),
            (1e-5, "1e-05"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(py_float_repr(f), want, "{f}");
        }
    }
}

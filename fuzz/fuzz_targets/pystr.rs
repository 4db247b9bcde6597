//! Python `str()` rendering of hash fields: any JSON renders without
//! panicking, floats render to text that parses back to the same value, and
//! string reprs are quoted and free of raw control characters.
#![no_main]

use akihabara_core::protocol::pystr::{py_float_repr, py_repr, py_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 8 {
        let f = f64::from_le_bytes(data[..8].try_into().unwrap_or([0; 8]));
        let r = py_float_repr(f);
        if f.is_finite() {
            let back: f64 = r.parse().unwrap_or_else(|_| panic!("{r} does not parse"));
            assert_eq!(back.to_bits(), f.to_bits(), "{f:e} -> {r}");
            assert!(r.contains('.') || r.contains('e'), "{r}");
        }
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = py_str(&v);
        let r = py_repr(&v);
        assert!(
            !r.chars().any(|c| (c as u32) < 0x20 || c as u32 == 0x7f),
            "{r:?}"
        );
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let r = py_repr(&serde_json::Value::String(s.to_owned()));
        assert!(r.starts_with('\'') || r.starts_with('"'));
        assert_eq!(r.chars().next(), r.chars().last());
    }
});

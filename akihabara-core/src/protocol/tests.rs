//! Protocol vectors: the body hash and headers of known calls.

use super::*;
use serde_json::json;

#[test]
fn ping_hash_matches_the_python_vector() {
    let env = Envelope::new(Ping::new("hi", 7));
    let h = synapse_body_hash(&env).unwrap();
    // Python: sha3_256((sha3_256(b"hi").hexdigest() + sha3_256(b"7").hexdigest()).encode())
    assert_eq!(
        h,
        "9244ea91fc9b8d27b0eedb6da2648a0fb958643a37c81c723d9dca39b71f87ee"
    );
    assert_eq!(
        synapse_body_hash(&Envelope::new(SpecsQuery::default())).unwrap(),
        EMPTY_BODY_HASH
    );
}

#[test]
fn hash_names_a_missing_field() {
    let err = body_hash(&["nope"], &json!({"a": 1})).unwrap_err();
    assert_eq!(err, HashError::MissingField("nope".into()));
    assert!(body_hash(&["a"], &json!([1])).is_err());
}

#[test]
fn envelope_json_has_python_field_order_and_nulls() {
    let env = Envelope::new(Ping::new("hi", 7));
    let s = serde_json::to_string(&env).unwrap();
    assert!(s.starts_with(r#"{"name":"Ping","timeout":12.0,"total_size":0,"header_size":0,"dendrite":{"status_code":null"#), "{s}");
    assert!(s.ends_with(r#""computed_body_hash":"","message":"hi","count":7,"echo":null,"count_plus_one":null,"served_by":null}"#), "{s}");
    // And it reads back, ignoring fields it does not know (as pydantic does).
    let mut v: serde_json::Value = serde_json::from_str(&s).unwrap();
    v["extra"] = json!(1);
    let back: Envelope<Ping> = serde_json::from_value(v).unwrap();
    assert_eq!(back.body, Ping::new("hi", 7));
}

#[test]
fn request_headers_round_trip_through_the_strict_parser() {
    let mut env = Envelope::new(Ping::new("hi", 7));
    env.dendrite = Some(TerminalInfo {
        nonce: Some(5),
        hotkey: Some("5Grw".into()),
        version: Some(PROTOCOL_VERSION as i64),
        ..TerminalInfo::default()
    });
    let h = headers::request_headers(&env, "abc");
    let pairs: Vec<(&str, &[u8])> = h.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
    assert!(h.contains(&("bt_header_input_obj_message".into(), "IiI=".into())));
    assert!(h.contains(&("timeout".into(), "12.0".into())));
    let parsed = RequestHeaders::parse(pairs.clone(), Ping::REQUIRED_FIELDS).unwrap();
    assert_eq!(parsed.dendrite.nonce, Some(5));
    assert_eq!(parsed.computed_body_hash.as_deref(), Some("abc"));
    assert_eq!(parsed.name.as_deref(), Some("Ping"));

    let mut dup = pairs.clone();
    dup.push(("computed_body_hash", b"x"));
    assert_eq!(
        RequestHeaders::parse(dup, &[]),
        Err(HeaderError::Duplicate("computed_body_hash".into()))
    );
    let missing: Vec<_> = pairs
        .iter()
        .filter(|(k, _)| !k.starts_with("bt_header_input_obj"))
        .cloned()
        .collect();
    assert!(matches!(
        RequestHeaders::parse(missing, Ping::REQUIRED_FIELDS),
        Err(HeaderError::Missing(_))
    ));
    let bad_utf8 = vec![("bt_header_dendrite_hotkey", &b"\xff\xfe"[..])];
    assert!(matches!(
        RequestHeaders::parse(bad_utf8, &[]),
        Err(HeaderError::NotUtf8(_))
    ));
    for t in ["nan", "inf", "0", "-3", "x"] {
        assert!(
            RequestHeaders::parse([("timeout", t.as_bytes())], &[]).is_err(),
            "{t}"
        );
    }
    assert!(RequestHeaders::parse([("bt_header_dendrite_nonce", &b"-1"[..])], &[]).is_err());
    // Non-protocol headers are not our business, duplicates included.
    assert!(RequestHeaders::parse([("accept", &b"a"[..]), ("accept", b"b")], &[]).is_ok());
}

/// A hash field among the base fields (`name`), which the synapse's own
/// fields lack: the envelope's object is hashed, as before.
#[test]
fn a_hash_field_among_the_base_fields_is_found_in_the_envelope() {
    #[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
    struct Named {
        x: u32,
    }
    impl Synapse for Named {
        const NAME: &'static str = "Named";
        const HASH_FIELDS: &'static [&'static str] = &["name", "x"];
    }
    let env = Envelope::new(Named { x: 3 });
    // Python: the same formula over str("Named") and str(3).
    assert_eq!(
        synapse_body_hash(&env).unwrap(),
        "bcc48926cce1bc840f944db67899c20f06cd149b2b1e5d9359fd2848b5eb0c0c"
    );
}

#[test]
fn the_signing_message_joins_its_parts_with_dots() {
    assert_eq!(
        signing_message(u64::MAX, "5D", "5A", "u-1", "h"),
        "18446744073709551615.5D.5A.u-1.h"
    );
    assert_eq!(signing_message(0, "", "", "", ""), "0....");
}

/// `parse_body` (two passes, no `flatten`) reads what the derived
/// `Envelope` deserializer reads, and refuses what it refuses; and it
/// refuses arrays, which derived structs would read by position.
#[test]
fn parse_body_reads_what_the_flattened_envelope_reads() {
    let signed = {
        let mut env = Envelope::new(Ping::new("hé \"q\" \\u00e9", -3));
        env.dendrite = Some(TerminalInfo {
            hotkey: Some("5Grw".into()),
            nonce: Some(u64::MAX),
            ..TerminalInfo::default()
        });
        serde_json::to_string(&env).unwrap()
    };
    let bodies = [
        signed.as_str(),
        r#"{"message":"m"}"#,
        r#" {"message":"m","count":1,"name":null,"timeout":1,"extra":{"deep":[1,[2,{}]]}}"#,
        r#"{"message":"m","required_hash_fields":["message","count"],"axon":{"status_code":200}}"#,
        r#"{"message":"m","count":"7"}"#,
        r#"{"count":1}"#,
        r#"{"message":"m","timeout":"soon"}"#,
        r#"{"message":"m","dendrite":{"nonce":-1}}"#,
        r#"{"message":"m","message":"twice"}"#,
        r#"{"message":"m"} trailing"#,
        r#"{"message":"m""#,
        "{}",
        "null",
        "",
    ];
    for body in bodies {
        let ours = parse_body::<Ping>(body.as_bytes());
        let derived = serde_json::from_str::<Envelope<Ping>>(body);
        match (&ours, &derived) {
            (Ok(a), Ok(b)) => assert_eq!(
                serde_json::to_value(a).unwrap(),
                serde_json::to_value(b).unwrap(),
                "{body}"
            ),
            (Err(_), Err(_)) => {}
            _ => panic!("{body}: ours {ours:?}, derived {derived:?}"),
        }
    }
    for body in [
        r#"["m", 1]"#,
        r#" [null,null,null,null,null,null,null,"m"]"#,
    ] {
        let e = parse_body::<Ping>(body.as_bytes()).unwrap_err();
        assert_eq!(e.reason, "not a JSON object", "{body}");
    }
}

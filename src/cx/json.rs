//! JSON written by hand where it runs on every call (the webhook's answer, each log line), byte
//! for byte what `serde_json` writes: strings that need no escaping, which are nearly all of them,
//! are found by one pass the compiler vectorizes and copied whole, where `serde_json` looks up
//! every byte in its escape table. Anything that does need escaping goes through `serde_json`.

use serde_json::Value;

/// Appends `text` as a JSON string.
pub fn push_str(out: &mut Vec<u8>, text: &str) {
    let plain = text.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(out, text);
    }
}

/// Appends `"key":`.
pub fn push_key(out: &mut Vec<u8>, key: &str) {
    push_str(out, key);
    out.push(b':');
}

/// Appends `value` as `serde_json` would.
pub fn push_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let _ = serde_json::to_writer(out, n);
        }
        Value::String(s) => push_str(out, s),
        Value::Array(items) => push_list(out, items, push_value),
        Value::Object(map) => push_map(out, map, push_value),
    }
}

/// Appends `[a,b,...]`, each item written by `item`.
pub fn push_list<T>(out: &mut Vec<u8>, items: &[T], item: impl Fn(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, one) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(out, one);
    }
    out.push(b']');
}

/// Appends `{"k":v,...}` in the map's order, each value written by `value`.
pub fn push_map<'m, K, V: 'm>(
    out: &mut Vec<u8>,
    map: impl IntoIterator<Item = (&'m K, &'m V)>,
    value: impl Fn(&mut Vec<u8>, &V),
) where
    K: AsRef<str> + 'm + ?Sized,
{
    out.push(b'{');
    for (i, (k, v)) in map.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_key(out, k.as_ref());
        value(out, v);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_and_values_read_as_serde_json_writes_them() {
        for text in [
            "",
            "plain",
            "a\"b",
            "back\\slash",
            "tab\tnew\nline",
            "\u{1}",
            "₹ ünïcode",
            "\u{7f}",
        ] {
            let mut ours = Vec::new();
            push_str(&mut ours, text);
            assert_eq!(ours, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
        let value = json!({
            "n": null, "t": true, "f": false, "i": -42, "u": 18_446_744_073_709_551_615_u64,
            "x": 0.1, "big": 1e300, "neg": -0.0, "s": "q\"uote", "empty": {}, "list": [],
            "nested": [{"a": [1, "two", {"b": null}]}, "\u{0}"],
        });
        let mut ours = Vec::new();
        push_value(&mut ours, &value);
        assert_eq!(String::from_utf8(ours).unwrap(), value.to_string());
    }
}
